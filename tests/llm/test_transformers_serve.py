"""The openai backend and LLMProposer through a real `transformers serve` on 127.0.0.1, serving a
tiny random-weight chat model built by the test: protocol, token accounting, prompt fitting,
caching and what happens when the server goes away. Answers are gibberish by design."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from matsearch.candidate import Candidate
from matsearch.proposers.llm import ChatRequest, LLMProposer, LLMUnavailableError
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.structures.limits import ChemistryLimits

pytest.importorskip(
    "fastapi",
    reason="`transformers serve` needs the serving extra: pip install 'transformers[serving]'",
)
pytest.importorskip(
    "uvicorn",
    reason="`transformers serve` needs the serving extra: pip install 'transformers[serving]'",
)

LIMITS = ChemistryLimits(elements=("Na", "K", "Li", "Cl"), max_atoms=16)
STARTUP_S = 90.0


class Served:
    """A `transformers serve` process started (and stopped) by this test module."""

    def __init__(self, model: Path, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        code = (
            "import sys; from transformers.cli.transformers import main; "
            "sys.argv[0] = 'transformers'; sys.exit(main())"
        )
        args = [
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--log-level",
            "warning",
        ]
        env = os.environ | {
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_CACHE": str(log.parent / "hub"),
        }
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited ({self.process.returncode}); see {self._log.name}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"transformers serve did not answer /health within {STARTUP_S} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tiny_model, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()


def make_backend(served: Served, model: Path, tmp_path: Path, **kw: object) -> OpenAIBackend:
    options: dict = {
        "base_url": served.url,
        "tokenizer": str(model),
        "context_tokens": 8192,
        "cache_path": tmp_path / "llm_cache.sqlite",
        "backoff_initial_s": 0.05,
        "max_attempts": 3,
    }
    return OpenAIBackend(str(model), **(options | kw))


def test_backend_protocol_and_exact_token_counts(served: Served, tiny_model: Path, tmp_path: Path) -> None:
    b = make_backend(served, tiny_model, tmp_path)
    requests = [
        ChatRequest(
            [
                {"role": "system", "content": "You write POSCAR files."},
                {"role": "user", "content": f"Propose NaCl polymorph {i}."},
            ],
            0.8,
            12,
            seed=i,
        )
        for i in range(3)
    ]
    answers = b.complete(requests)
    for request, answer in zip(requests, answers, strict=True):
        assert isinstance(answer.text, str) and not answer.cached and answer.error is None
        assert answer.prompt_tokens == b.count_tokens(request.messages)  # server and our tokenizer agree
        assert 1 <= answer.completion_tokens <= 12
        assert answer.cost_usd is None  # a local model has no list price
    again = b.complete(requests)
    assert all(a.cached for a in again) and [a.text for a in again] == [a.text for a in answers]


def test_proposer_fits_prompts_and_records_parse_failures(
    served: Served, tiny_model: Path, tmp_path: Path, scored_parents: list[Candidate]
) -> None:
    b = make_backend(served, tiny_model, tmp_path)
    proposer = LLMProposer(
        b,
        k_parents=2,
        structures_per_prompt=2,
        max_tokens=16,
        repair_attempts=1,
        operator_weights={"crossover": 1.0},
    )
    proposals = proposer.propose(scored_parents, 2, LIMITS, np.random.default_rng(0))
    first = [p for p in proposals if "repair_of" not in p.extra]
    repairs = [p for p in proposals if "repair_of" in p.extra]
    assert first and repairs  # gibberish is rejected, then one repair prompt is tried
    for p in proposals:
        assert p.structure is None and p.reason.startswith("parse_error: ")
        assert p.extra["parse_outcome"] == p.reason.removeprefix("parse_error: ")
        assert p.operator == "llm_crossover" and len(p.parents) == 2 and p.origin == "openai"
        assert p.extra["completion_tokens"] <= 16
    two_parent_tokens = first[0].extra["prompt_tokens"]
    assert first[0].extra["prompt"][1]["content"].count('"formula"') == 2
    assert repairs[0].extra["prompt"][2] == {
        "role": "assistant",
        "content": first[0].extra["response"],
    }

    # a context that holds the one-parent prompt but not the two-parent one: a parent is dropped
    small = make_backend(served, tiny_model, tmp_path / "small", context_tokens=two_parent_tokens - 1 + 16)
    proposer = LLMProposer(
        small,
        k_parents=2,
        structures_per_prompt=2,
        max_tokens=16,
        repair_attempts=0,
        operator_weights={"crossover": 1.0},
    )
    [fitted] = proposer.propose(scored_parents, 2, LIMITS, np.random.default_rng(0))
    assert fitted.operator == "llm_mutate" and len(fitted.parents) == 1
    assert fitted.extra["prompt_tokens"] + 16 <= small.context_tokens
    assert fitted.extra["prompt"][1]["content"].count('"formula"') == 1


def test_server_going_away_raises_llm_unavailable(
    served: Served, tiny_model: Path, tmp_path: Path, scored_parents: list[Candidate]
) -> None:
    proposer = LLMProposer(make_backend(served, tiny_model, tmp_path), max_tokens=8, repair_attempts=0)
    assert proposer.propose(scored_parents, 1, LIMITS, np.random.default_rng(5))
    served.stop()  # this module's server: later tests in this module must not need it
    with pytest.raises(
        LLMUnavailableError, match=rf"127.0.0.1:{served.port}.*did not answer within 3 attempts"
    ):
        proposer.propose(scored_parents, 1, LIMITS, np.random.default_rng(6))
