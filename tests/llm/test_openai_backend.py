"""The openai backend and LLMProposer against a scripted OpenAI-compatible server on 127.0.0.1:
exact answers, 429/500/slow/dropped-connection retries, caching, token and cost accounting, and
an API key that never reaches the cache file or the logs."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matsearch.candidate import Candidate
from matsearch.errors import MatsearchError
from matsearch.proposers.base import Proposer
from matsearch.proposers.llm import ChatRequest, LLMConfigError, LLMProposer, LLMUnavailableError
from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend
from matsearch.proposers.llm.codecs import to_poscar
from matsearch.structures.limits import ChemistryLimits

from .crystals import rocksalt
from .scripted_server import GOOD_ANSWER, Action, ScriptedServer

API_KEY = "sk-test-Zq81sEcReT-never-log-me"
NACL = rocksalt()
KCL = rocksalt(6.29, "K")
LIMITS = ChemistryLimits(elements=("Na", "K", "Li", "Cl"), max_atoms=16)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


def backend(server: ScriptedServer, tmp_path: Path, **kw: Any) -> OpenAIBackend:
    options: dict[str, Any] = {
        "base_url": server.url,
        "api_key": API_KEY,
        "cache_path": tmp_path / "llm_cache.sqlite",
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "price_usd_per_mtok": (1.0, 2.0),
    }
    return OpenAIBackend("scripted-model", **(options | kw))


def request(text: str = "Propose NaCl polymorphs.", seed: int = 1) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], temperature=0.7, max_tokens=256, seed=seed)


# --- backend ---------------------------------------------------------------------------------


def test_answer_tokens_cost_and_cache_across_a_resume(server: ScriptedServer, tmp_path: Path) -> None:
    b = backend(server, tmp_path)
    [first] = b.complete([request()])
    assert first.text == GOOD_ANSWER and not first.cached
    assert (first.prompt_tokens, first.completion_tokens) == (1000, 500)
    assert first.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    sent = server.requests[0]
    assert sent["model"] == "scripted-model" and sent["seed"] == 1 and sent["max_tokens"] == 256
    assert sent["temperature"] == 0.7 and sent["messages"] == request().messages

    [again] = b.complete([request()])
    assert again.cached and again.cost_usd == 0.0 and again.text == GOOD_ANSWER
    assert (again.prompt_tokens, again.completion_tokens) == (1000, 500)
    b.close()
    resumed = backend(server, tmp_path)  # a resumed run opens the same cache file
    [third] = resumed.complete([request()])
    assert third.cached and third.prompt_hash == first.prompt_hash
    assert len(server.requests) == 1  # neither call reached the server

    [other] = resumed.complete([request(seed=2)])  # another sample of the same prompt is a new request
    assert not other.cached and len(server.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        Action(kind="status", status=429),
        Action(kind="status", status=429, headers={"Retry-After": "0.01"}),
        Action(kind="status", status=500),
        Action(kind="status", status=503),
        Action(kind="drop"),
    ],
    ids=["429", "429-retry-after", "500", "503", "dropped-connection"],
)
def test_transient_failure_then_ok(server: ScriptedServer, tmp_path: Path, failure: Action) -> None:
    server.script.extend([failure, failure])
    [answer] = backend(server, tmp_path).complete([request()])
    assert answer.text == GOOD_ANSWER and answer.prompt_tokens == 1000
    assert len(server.requests) == 3


def test_slow_answer_times_out_and_is_retried(server: ScriptedServer, tmp_path: Path) -> None:
    server.script.append(Action(delay_s=3.0))
    [answer] = backend(server, tmp_path, timeout_s=0.3).complete([request()])
    assert answer.text == GOOD_ANSWER
    assert len(server.requests) == 2  # the 3 s answer was abandoned after 0.3 s and asked again


def test_gives_up_after_max_attempts(server: ScriptedServer, tmp_path: Path) -> None:
    server.default = Action(kind="status", status=503)
    with pytest.raises(
        LLMUnavailableError, match=r"did not answer within 3 attempts .*HTTP 503.*matsearch resume"
    ):
        backend(server, tmp_path, max_attempts=3).complete([request()])
    assert len(server.requests) == 3
    assert issubclass(LLMUnavailableError, MatsearchError)


def test_gives_up_after_max_total_seconds(server: ScriptedServer, tmp_path: Path) -> None:
    server.default = Action(kind="status", status=500)
    b = backend(server, tmp_path, max_attempts=50, backoff_initial_s=0.2, backoff_max_s=0.2, max_total_s=0.5)
    with pytest.raises(LLMUnavailableError):
        b.complete([request()])
    assert 2 <= len(server.requests) <= 4  # the 0.5 s budget ended it long before 50 attempts


def test_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend(
        "m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=API_KEY,
        max_attempts=2,
        backoff_initial_s=0.01,
    )
    with pytest.raises(LLMUnavailableError, match=rf"127.0.0.1:{port}.*APIConnectionError") as info:
        b.complete([request()])
    assert API_KEY not in str(info.value)


def test_rejected_key_and_unknown_model_are_config_errors(server: ScriptedServer, tmp_path: Path) -> None:
    server.script.extend([Action(kind="status", status=401), Action(kind="status", status=404)])
    b = backend(server, tmp_path)
    with pytest.raises(LLMConfigError, match="rejected the API key") as info:
        b.complete([request()])
    assert API_KEY not in str(info.value)
    with pytest.raises(LLMConfigError, match="404 for model 'scripted-model'"):
        b.complete([request()])
    assert len(server.requests) == 2  # neither is retried


def test_refused_request_is_reported_not_raised(server: ScriptedServer, tmp_path: Path) -> None:
    server.script.append(Action(kind="status", status=400))
    b = backend(server, tmp_path, max_concurrency=1)  # one at a time: the first request gets the 400
    [refused, ok] = b.complete([request("too long"), request("fine")])
    assert refused.error == "http_400" and refused.text == ""
    assert ok.error is None and ok.text == GOOD_ANSWER
    [again] = b.complete([request("too long")])
    assert not again.cached  # refusals are not cached


def test_concurrency_is_bounded(server: ScriptedServer, tmp_path: Path) -> None:
    server.default = Action(delay_s=0.25)
    answers = backend(server, tmp_path, max_concurrency=2).complete([request(seed=i) for i in range(6)])
    assert len(answers) == 6 and all(a.text == GOOD_ANSWER for a in answers)
    assert server.max_in_flight == 2


def test_settings_from_environment(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    b = OpenAIBackend("scripted-model")
    [answer] = b.complete([request()])
    assert answer.text == GOOD_ANSWER
    assert server.auth_headers == [f"Bearer {API_KEY}"]
    assert answer.cost_usd is None  # unknown model, no price given


def test_missing_key_for_openai_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LLMConfigError, match="set the OPENAI_API_KEY environment variable"):
        OpenAIBackend("gpt-4o-mini")


def test_api_key_never_in_cache_logs_or_repr(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "httpcore", "matsearch"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    server.script.extend(
        [
            Action(kind="status", status=429),
            Action(kind="drop"),
            Action(),
            Action(kind="status", status=401),
        ]
    )
    b = backend(server, tmp_path)
    b.complete([request()])  # 429, dropped, then answered
    with pytest.raises(LLMConfigError):
        b.complete([request(seed=5)])
    b.complete([request()])
    b.close()
    assert server.auth_headers[0] == f"Bearer {API_KEY}"  # the key was really used
    assert "LLM request" in caplog.text  # retries were logged
    assert API_KEY not in caplog.text
    cache_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("llm_cache.sqlite*"))
    assert b"Propose NaCl polymorphs." in cache_bytes
    assert API_KEY.encode() not in cache_bytes
    assert API_KEY not in repr(b) and API_KEY not in str(vars(b))


# --- proposer over the scripted server --------------------------------------------------------


def parents() -> list[Candidate]:
    out = []
    for i, (s, e_hull) in enumerate([(NACL, 0.0), (KCL, 0.0123)]):
        out.append(
            Candidate(
                id=7 + i,
                generation=1,
                origin="builtin",
                operator="seed",
                structure=s,
                relaxed=s,
                e_above_hull=e_hull,
                scores={"e_above_hull": e_hull},
            )
        )
    return out


def test_proposer_turns_answers_into_proposals(server: ScriptedServer, tmp_path: Path) -> None:
    proposer = LLMProposer(
        backend(server, tmp_path), objective_text="Goal: low e_above_hull.", structures_per_prompt=2
    )
    assert isinstance(proposer, Proposer) and proposer.name == "openai"
    proposals = proposer.propose(parents(), 4, LIMITS, np.random.default_rng(0))
    assert len(server.requests) == 2  # ceil(4 / 2) prompts
    assert [p.structure.composition.reduced_formula for p in proposals] == [
        "NaCl",
        "KCl",
        "NaCl",
        "KCl",
    ]
    for p in proposals:
        assert p.origin == "openai" and p.operator in (
            "llm_reproduce",
            "llm_mutate",
            "llm_crossover",
        )
        assert set(p.parents) <= {7, 8} and p.parents
        assert p.extra["parse_outcome"] == "parsed" and p.extra["cached"] is False
        assert p.extra["prompt_tokens"] == 1000 and p.extra["completion_tokens"] == 500
        assert p.extra["cost_usd"] == pytest.approx(0.002)
        assert p.extra["response"] == GOOD_ANSWER and len(p.extra["prompt_hash"]) == 64
    user = server.requests[0]["messages"][1]["content"]
    assert "Goal: low e_above_hull." in user
    assert '"e_above_hull": 0.0123' in user or '"e_above_hull": 0.0' in user
    assert "Na, K, Li, Cl" in server.requests[0]["messages"][0]["content"]

    again = proposer.propose(parents(), 4, LIMITS, np.random.default_rng(0))  # same rng state: all cached
    assert len(server.requests) == 2 and all(p.extra["cached"] for p in again)


def test_proposer_repairs_a_malformed_answer(server: ScriptedServer, tmp_path: Path) -> None:
    bad = to_poscar(NACL).replace("0.5000 0.5000 0.5000 Cl", "0.5000 0.5000 0.5000 Qx")
    server.script.append(Action(text=f"Here it is:\n```\n{bad}\n```"))
    proposer = LLMProposer(backend(server, tmp_path), structures_per_prompt=1, repair_attempts=1)
    proposals = proposer.propose(parents(), 1, LIMITS, np.random.default_rng(1))
    failed = [p for p in proposals if p.structure is None]
    repaired = [p for p in proposals if p.structure is not None]
    assert [p.reason for p in failed] == ["parse_error: unknown_element"]
    assert failed[0].extra["parse_outcome"] == "unknown_element" and "Qx" in failed[0].extra["parse_snippet"]
    assert len(repaired) == 1 and repaired[0].extra["parse_outcome"] == "repaired"
    assert repaired[0].extra["repair_of"] == failed[0].extra["prompt_hash"]
    repair_messages = server.requests[1]["messages"]
    assert [m["role"] for m in repair_messages] == ["system", "user", "assistant", "user"]
    assert repair_messages[2]["content"].startswith("Here it is:")
    assert "unknown_element: site 5: 'Qx' is not a chemical element symbol" in repair_messages[3]["content"]


def test_proposer_zero_shot_csp_and_refusals(server: ScriptedServer, tmp_path: Path) -> None:
    proposer = LLMProposer(backend(server, tmp_path), structures_per_prompt=2, repair_attempts=0)
    zero = proposer.propose([], 1, LIMITS, np.random.default_rng(2))
    assert [p.operator for p in zero] == ["llm_zero_shot"] and zero[0].parents == []
    from pymatgen.core import Composition

    csp = proposer.propose(
        parents(),
        2,
        ChemistryLimits(("Na", "Cl"), target=Composition("NaCl")),
        np.random.default_rng(3),
    )
    assert {p.operator for p in csp} == {"llm_csp"}
    assert "crystal structure of NaCl" in server.requests[-1]["messages"][1]["content"]
    server.script.append(Action(kind="status", status=400))
    refused = proposer.propose(parents(), 1, LIMITS, np.random.default_rng(4))
    assert [(p.structure, p.reason) for p in refused] == [(None, "llm_error: http_400")]


def test_proposer_raises_when_server_is_down(server: ScriptedServer, tmp_path: Path) -> None:
    server.default = Action(kind="status", status=502)
    proposer = LLMProposer(backend(server, tmp_path, max_attempts=2))
    with pytest.raises(LLMUnavailableError):
        proposer.propose(parents(), 2, LIMITS, np.random.default_rng(0))


def test_factory_builds_the_proposer_from_a_spec_entry(server: ScriptedServer, tmp_path: Path) -> None:
    from matsearch.proposers.registry import build_proposer
    from matsearch.spec import OpenAIProposerSpec

    spec = OpenAIProposerSpec(
        model="scripted-model", base_url=server.url, api_key=API_KEY, objective_text="Prefer K."
    )
    proposer = build_proposer(spec, tmp_path / "run")
    proposals = proposer.propose(parents(), 2, LIMITS, np.random.default_rng(0))
    assert [p.structure.composition.reduced_formula for p in proposals] == ["NaCl", "KCl"]
    assert (tmp_path / "run" / "llm_cache.sqlite").is_file()
    user = server.requests[0]["messages"][1]["content"]
    assert "e_above_hull (eV/atom): minimise" in user and "Prefer K." in user
    assert server.auth_headers == [f"Bearer {API_KEY}"]


@pytest.mark.parametrize(
    "body", ["{not json", "[]", '{"choices": 5}'], ids=["not-json", "list", "bad-choices"]
)
def test_malformed_reply_is_retried_like_a_5xx(server: ScriptedServer, tmp_path: Path, body: str) -> None:
    server.script.extend([Action(kind="raw", text=body), Action(kind="raw", text=body)])
    [answer] = backend(server, tmp_path).complete([request()])
    assert answer.text == GOOD_ANSWER and len(server.requests) == 3


def test_malformed_replies_until_the_end_stop_the_run_cleanly(server: ScriptedServer, tmp_path: Path) -> None:
    server.default = Action(kind="raw", text="<html>gateway says hi</html>")
    with pytest.raises(
        LLMUnavailableError, match=r"within 2 attempts .*a malformed reply: a body that is not JSON"
    ):
        backend(server, tmp_path, max_attempts=2).complete([request()])


def test_csp_prompt_shows_decorated_templates_only_when_asked(server: ScriptedServer, tmp_path: Path) -> None:
    from pymatgen.core import Composition

    from matsearch.proposers.base import RunContext
    from matsearch.structures.known import KnownMaterials
    from matsearch.structures.templates import template_decorations

    found = template_decorations(Composition("NaCl"), 2, KnownMaterials.load())
    context = RunContext(examples=tuple(t.structure for t in found[:2]))
    limits = ChemistryLimits(("Na", "Cl"), max_atoms=2, target=Composition("NaCl"))
    prompts = []
    for n_examples in (0, 2):
        proposer = LLMProposer(
            backend(server, tmp_path / str(n_examples)),
            context=context,
            structures_per_prompt=1,
            repair_attempts=0,
            template_examples=n_examples,
        )
        proposer.propose([], 1, limits, np.random.default_rng(5))
        prompts.append(server.requests[-1]["messages"])
    without, with_examples = prompts
    assert without[0] == with_examples[0]  # same system message
    assert "Known structures of the same stoichiometry type" not in without[1]["content"]
    shown = with_examples[1]["content"]
    assert "Known structures of the same stoichiometry type" in shown
    for template in found[:2]:
        assert f"{template.template_formula} ({template.template_id})" in shown
    assert "crystal structure of NaCl" in shown
