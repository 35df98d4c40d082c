"""A whole run driven by the openai backend against a scripted server on 127.0.0.1: prompts,
responses, tokens and parse outcomes are stored; a server that dies mid-run leaves a run that
`resume` finishes without paying twice; the API key never reaches the run folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from matsearch import Run, Search
from matsearch.errors import RunInterrupted

from .scripted_server import Action, ScriptedServer

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
    assert first["prompt"] and first["response"] and first["prompt_tokens"] == 1000
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
