"""A whole run driven by the openai backend against a scripted server on 127.0.0.1: prompts,
responses, tokens and parse outcomes are stored; a server that dies mid-run leaves a run that
`resume` finishes without paying twice; the API key never reaches the run folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from matsearch import Run, Search
from matsearch.errors import RunInterrupted
from matsearch.proposers.llm import LLMProposer
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.proposing import to_candidate
from matsearch.store import RunStore
from matsearch.structures.limits import ChemistryLimits

from .scripted_server import GOOD_ANSWER, Action, ScriptedServer

API_KEY = "sk-engine-test-7Hq2-do-not-store"


def _spec(tmp_path: Path) -> dict:
    return {
        "name": "llm",
        "seed": 5,
        "output": str(tmp_path),
        "chemistry": {"elements": ["Na", "K", "Cl"], "max_atoms": 8, "max_elements": 2},
        "population_size": 4,
        "children_per_generation": 4,
        "generations": 2,
        "proposers": [
            {
                "kind": "openai",
                "model": "scripted-model",
                "max_retries": 1,
                "timeout_s": 5,
                "max_concurrency": 2,
            }
        ],
        "mlip": {"steps": 40},
    }


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_llm_run_stores_prompts_and_survives_a_dead_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with ScriptedServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        # one good answer, then the server stops answering: the run stops in generation 1
        server.script.append(Action())
        server.default = Action(kind="drop")
        with pytest.raises(RunInterrupted, match="continue it with `matsearch resume"):
            Search(_spec(tmp_path)).run()
        answered_before = 1
    run_dir = tmp_path / "llm"
    assert Run(run_dir).last_generation == 0

    with ScriptedServer() as server:  # the server is back (on another port)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        run = Search.from_run_dir(run_dir).resume()
        assert run.last_generation == 2
        # the answer received before the crash came from the cache, not from the server again
        prompts = [json.dumps(r["messages"]) for r in server.requests]
    llm = [c for c in run.candidates() if c.origin == "openai"]
    assert llm, "no candidate came from the LLM"
    first = llm[0].extra
    call = run.llm_call(first["llm_call_id"])
    assert call["prompt"] and call["response"] and not call["truncated"]
    assert first["prompt_tokens"] == 1000
    assert first["completion_tokens"] == 500 and first["parse_outcome"] == "parsed"
    assert any(c.extra.get("cached") for c in llm)
    assert len(set(prompts)) == len(prompts)
    stats = run.origin_stats()["openai"]
    assert stats["parsed_rate"] == 1.0 and stats["proposed"] == len(llm) >= answered_before

    with sqlite3.connect(run_dir / "run.sqlite") as db:
        (n_with_tokens,) = db.execute(
            "SELECT COUNT(*) FROM candidates WHERE json_extract(extra, '$.prompt_tokens') > 0"
        ).fetchone()
    assert n_with_tokens == len(llm)
    assert API_KEY.encode() not in _all_bytes(run_dir)


def test_two_five_megabyte_answers_leave_a_small_store(tmp_path: Path) -> None:
    padding = "\nThe structure above is stable because " + "it is very stable " * 290_000
    answer = GOOD_ANSWER + padding  # two structures, then 5 MB of prose
    assert len(answer) > 5_000_000
    with ScriptedServer() as server:
        server.script.extend([Action(text=answer + " (first)"), Action(text=answer + " (second)")])
        backend = OpenAIBackend(
            "scripted-model",
            base_url=server.url,
            api_key=API_KEY,
            cache_path=tmp_path / "llm_cache.sqlite",
        )
        proposer = LLMProposer(backend, structures_per_prompt=2)
        limits = ChemistryLimits(elements=("Na", "K", "Cl"), max_atoms=16)
        proposals = proposer.propose([], 4, limits, np.random.default_rng(0))
        assert len(server.requests) == 2
    assert sum(p.structure is not None for p in proposals) == 4
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    store.add([to_candidate(1, p) for p in proposals], proposed_generation=1)
    calls = [c.extra["llm_call_id"] for c in store.candidates()]
    assert len(calls) > 4 and len(set(calls)) == 2  # each answer stored once for all its records
    for call in map(store.llm_call, set(calls)):
        assert call["truncated"] and call["response_chars"] > 5_000_000
        assert call["response"].startswith(GOOD_ANSWER)
    store.close()
    assert (tmp_path / "run" / "run.sqlite").stat().st_size < 12_000_000
