"""Structured output against the scripted server on 127.0.0.1: a server that accepts JSON-schema
output gets the schema with every request and every answer parses; a server that refuses it is
asked again in free text, the fallback is recorded per call and kept for later prompts; the
cache remembers how each answer was asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from matsearch.proposers.llm import LLMProposer
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.structures.limits import ChemistryLimits

from .crystals import rocksalt
from .scripted_server import Action, ScriptedServer, schema_answer

LIMITS = ChemistryLimits(elements=("Na", "K", "Cl"), max_atoms=8)
ANSWER = schema_answer(rocksalt(), rocksalt(6.29, "K"))


def _backend(server: ScriptedServer, tmp_path: Path) -> OpenAIBackend:
    return OpenAIBackend(
        "scripted-model",
        base_url=server.url,
        api_key="sk-local",
        cache_path=tmp_path / "llm_cache.sqlite",
        backoff_initial_s=0.01,
    )


def _sent_schema(request: dict[str, Any]) -> dict[str, Any]:
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    return response_format["json_schema"]["schema"]


def test_schema_on_every_request_and_every_answer_parses(tmp_path: Path, scored_parents: list) -> None:
    with ScriptedServer() as server:
        server.default = Action(text=ANSWER)
        proposer = LLMProposer(_backend(server, tmp_path), structures_per_prompt=2)
        proposals = proposer.propose(scored_parents, 6, LIMITS, np.random.default_rng(3))
    assert len(server.requests) == 3
    for request in server.requests:
        schema = _sent_schema(request)
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(json.loads(ANSWER), schema)  # what the server was allowed to answer
        species = schema["properties"]["structures"]["items"]["properties"]["species"]
        assert species["items"]["enum"] == ["Na", "K", "Cl"] and species["maxItems"] == 8
        assert '"coords": [[x, y, z], ...]' in request["messages"][0]["content"]
    assert len(proposals) == 6 and all(p.structure is not None for p in proposals)
    assert {p.extra["output_mode"] for p in proposals} == {"json_schema"}
    assert {p.structure.composition.reduced_formula for p in proposals} == {"NaCl", "KCl"}


def test_refusing_server_falls_back_to_free_text_and_says_so(tmp_path: Path, scored_parents: list) -> None:
    with ScriptedServer(refuses_schema=True) as server:
        backend = _backend(server, tmp_path)
        proposer = LLMProposer(backend, structures_per_prompt=2)
        first = proposer.propose(scored_parents, 2, LIMITS, np.random.default_rng(0))
        later = proposer.propose(scored_parents, 2, LIMITS, np.random.default_rng(1))
    refused, retried, free = server.requests
    assert "response_format" in refused and "response_format" not in retried
    assert retried["messages"] == refused["messages"]
    assert "response_format" not in free
    assert "POSCAR" in free["messages"][0]["content"]  # later prompts describe the text format
    assert not backend.structured_output
    assert [p.structure.composition.reduced_formula for p in first + later] == ["NaCl", "KCl"] * 2
    assert {p.extra["output_mode"] for p in first} == {"free_text_fallback"}
    assert {p.extra["output_mode"] for p in later} == {"free_text"}


def test_cache_remembers_the_output_mode(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        server.default = Action(text=ANSWER)
        proposer = LLMProposer(_backend(server, tmp_path), structures_per_prompt=2)
        fresh = proposer.propose([], 2, LIMITS, np.random.default_rng(0))
        resumed = LLMProposer(_backend(server, tmp_path), structures_per_prompt=2)
        cached = resumed.propose([], 2, LIMITS, np.random.default_rng(0))
    assert len(server.requests) == 1
    assert [p.extra["cached"] for p in fresh + cached] == [False, False, True, True]
    assert {p.extra["output_mode"] for p in fresh + cached} == {"json_schema"}
