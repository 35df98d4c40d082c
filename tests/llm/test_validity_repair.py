"""Structures that parse but fail the run's validity check: quoted back in one repair prompt with
the reason, kept as records (the engine stores them as invalid), never counted as children."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from matsearch.proposers.base import RunContext
from matsearch.proposers.llm import LLMProposer
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.structures.limits import ChemistryLimits

from .crystals import rocksalt
from .scripted_server import Action, ScriptedServer, schema_answer

LIMITS = ChemistryLimits(elements=("Na", "K", "Cl"), max_atoms=8)


def no_sodium(structure: Structure) -> str | None:
    """A stand-in validity check: sodium is not allowed."""
    return "element_not_allowed: Na" if "Na" in structure.composition else None


def _proposer(server: ScriptedServer, tmp_path: Path, **kw: object) -> LLMProposer:
    backend = OpenAIBackend("scripted-model", base_url=server.url, api_key="sk-local")
    return LLMProposer(backend, context=RunContext(check=no_sodium), structures_per_prompt=2, **kw)


def test_invalid_structure_gets_one_repair_prompt_with_the_reason(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.script.append(Action(text=schema_answer(rocksalt(), rocksalt(6.29, "K"))))
        server.script.append(Action(text=schema_answer(rocksalt(6.1, "K"))))
        proposals = _proposer(server, tmp_path).propose([], 2, LIMITS, np.random.default_rng(0))
    assert len(server.requests) == 2
    assert server.requests[1]["messages"][-1]["content"].startswith(
        "Some structures in your previous answer could not be used:\n"
        "- structure 1 (NaCl): element_not_allowed: Na\n"
    )
    assert [(p.structure.composition.reduced_formula, p.extra.get("invalid_reason")) for p in proposals] == [
        ("NaCl", "element_not_allowed: Na"),
        ("KCl", None),
        ("KCl", None),
    ]
    assert [p.extra["parse_outcome"] for p in proposals] == ["parsed", "parsed", "repaired"]


def test_no_repair_when_switched_off_and_extra_invalid_structures_are_dropped(
    tmp_path: Path,
) -> None:
    with ScriptedServer() as server:
        server.default = Action(text=schema_answer(*[rocksalt(5.6 + 0.1 * i) for i in range(5)]))
        proposer = _proposer(server, tmp_path, repair_attempts=0)
        proposals = proposer.propose([], 2, LIMITS, np.random.default_rng(0))
    assert len(server.requests) == 1
    assert [p.extra["invalid_reason"] for p in proposals] == ["element_not_allowed: Na"] * 2
