"""Whole runs with the openai proposer against the scripted server on 127.0.0.1: the stored prompt
states the run's objectives with units and directions, answers follow the JSON schema sent with
every request, a structure that fails validity gets a repair prompt whose result is counted, and
a server that refuses the schema leaves a run that falls back to free text and records it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pymatgen.core import Lattice, Structure

from matsearch import Run, Search, Status

from .crystals import rocksalt
from .scripted_server import Action, ScriptedServer, schema_answer

MIXED = Structure(  # ordered (Na,K)Cl rock salt: valid and new in this run
    Lattice.cubic(6.0),
    ["Na", "Na", "K", "K", "Cl", "Cl", "Cl", "Cl"],
    [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    + [[0.5, 0.5, 0.5], [0, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0]],
)
SQUASHED = rocksalt(2.5)  # 1.95 Å³/atom: fails the volume-per-atom check


def _spec(tmp_path: Path, **changes: object) -> dict:
    spec = {
        "name": "llm-loop",
        "seed": 3,
        "output": str(tmp_path),
        "chemistry": {"elements": ["Na", "K", "Cl"], "max_atoms": 8, "max_elements": 3},
        "population_size": 2,
        "children_per_generation": 2,
        "generations": 1,
        "proposers": [
            {
                "kind": "openai",
                "model": "scripted-model",
                "structures_per_prompt": 2,
                "max_concurrency": 1,
                "max_retries": 0,
                "timeout_s": 10,
            }
        ],
        "mlip": {"steps": 30},
    }
    return spec | changes


def _llm_children(run: Run) -> list:
    return [c for c in run.candidates() if c.origin == "openai"]


def test_prompt_states_objectives_answers_follow_the_schema_and_invalid_ones_are_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(
        tmp_path,
        objectives=[
            {"name": "e_above_hull", "direction": "min"},
            {"name": "bulk_modulus", "direction": "max"},
        ],
        scoring={"bulk_modulus": {"n_points": 5, "steps": 20}},
    )
    with ScriptedServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        server.script.append(Action(text=schema_answer(rocksalt(6.29, "K"), SQUASHED)))
        server.script.append(Action(text=schema_answer(MIXED)))  # the repaired structure
        run = Search(spec).run()
    first, repair = server.requests
    for request in server.requests:
        schema = request["response_format"]["json_schema"]["schema"]
        jsonschema.validate(json.loads(schema_answer(MIXED, SQUASHED)), schema)
    assert repair["messages"][:-2] == first["messages"]
    assert "- structure 2 (NaCl): volume_ratio" in repair["messages"][-1]["content"]

    children = _llm_children(run)
    assert len(children) == 3 and all(c.structure is not None for c in children)
    assert {c.extra["output_mode"] for c in children} == {"json_schema"}
    prompt = run.llm_call(children[0].extra["llm_call_id"])["prompt"][1]["content"]  # stored once per call
    assert "- e_above_hull (eV/atom): minimise" in prompt
    assert "- bulk_modulus (GPa): maximise" in prompt
    assert '"bulk_modulus": ' in prompt and "formation_energy" not in prompt  # parents' scores
    invalid = [c for c in children if c.status == Status.INVALID]
    assert [c.reason.split(":")[0] for c in invalid] == ["volume_ratio"]
    repaired = [c for c in children if "repair_of" in c.extra]
    assert [c.structure.composition.reduced_formula for c in repaired] == ["KNaCl2"]
    assert repaired[0].extra["parse_outcome"] == "repaired"
    stats = run.origin_stats()["openai"]
    assert (stats["proposed"], stats["repaired"], stats["repaired_valid"]) == (3, 1, 1)


def test_run_falls_back_to_free_text_when_the_server_refuses_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedServer(refuses_schema=True) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        run = Search(_spec(tmp_path)).run()
    assert run.last_generation == 1
    refused, answered = server.requests
    assert "response_format" in refused and "response_format" not in answered
    children = _llm_children(run)
    assert children and all(c.structure is not None for c in children)
    assert {c.extra["output_mode"] for c in children} == {"free_text_fallback"}
    log = (tmp_path / "llm-loop" / "run.log").read_text()
    assert "refused JSON-schema output" in log
