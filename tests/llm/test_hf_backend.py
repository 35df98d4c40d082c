"""The hf backend with the tiny local chat model in-process: chat template, batched generation that
matches one-at-a-time generation, token counts, caching, and clear errors for missing models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from matsearch.candidate import Candidate
from matsearch.proposers.llm import ChatRequest, LLMConfigError, LLMProposer
from matsearch.structures.limits import ChemistryLimits

pytest.importorskip("transformers", reason="the hf backend needs transformers (pip install 'matsearch[llm]')")

from matsearch.proposers.llm.backends.hf_backend import HFBackend  # noqa: E402


def chat(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You write POSCAR files."},
        {"role": "user", "content": text},
    ]


@pytest.fixture(scope="module")
def hf(tiny_model: Path) -> HFBackend:
    return HFBackend(tiny_model, device="cpu", dtype="float32", batch_size=2)


def test_batched_greedy_generation_matches_one_at_a_time(hf: HFBackend) -> None:
    prompts = ["Propose NaCl.", "Propose a much longer list of K-Cl polymorphs, please.", "LiCl?"]
    requests = [ChatRequest(chat(p), temperature=0.0, max_tokens=10) for p in prompts]
    batched = hf.complete(requests)  # batches of 2 with left padding
    single = [hf.complete([r])[0] for r in requests]
    assert [a.text for a in batched] == [a.text for a in single]
    for request, answer in zip(requests, batched, strict=True):
        assert answer.prompt_tokens == hf.count_tokens(request.messages)
        content = request.messages[1]["content"]
        rendered = f"<s>system: You write POSCAR files.\n<s>user: {content}\nassistant: "
        assert answer.prompt_tokens == len(rendered) - 2 * 2  # one token per character; <s> is one
        assert 1 <= answer.completion_tokens <= 10
        assert answer.finish_reason in ("stop", "length") and answer.cost_usd == 0.0


def test_sampling_seeds_and_cache(tiny_model: Path, tmp_path: Path) -> None:
    backend = HFBackend(tiny_model, device="cpu", batch_size=4, cache_path=tmp_path / "llm_cache.sqlite")
    assert backend.context_tokens == 8192 and backend.name == "hf"
    a = ChatRequest(chat("Propose NaCl."), temperature=1.0, max_tokens=24, seed=1)
    b = ChatRequest(chat("Propose NaCl."), temperature=1.0, max_tokens=24, seed=2)
    first = backend.complete([a])[0]
    assert backend.complete([a])[0].cached
    fresh = HFBackend(tiny_model, device="cpu")  # no cache: generated again with the same seed
    assert fresh.complete([a])[0].text == first.text
    assert fresh.complete([b])[0].text != first.text


def test_proposer_with_hf_backend(hf: HFBackend, scored_parents: list[Candidate]) -> None:
    proposer = LLMProposer(hf, max_tokens=16, repair_attempts=0, structures_per_prompt=2)
    assert proposer.name == "hf"
    limits = ChemistryLimits(elements=("Na", "K", "Li", "Cl"))
    proposals = proposer.propose(scored_parents, 4, limits, np.random.default_rng(0))
    assert len({p.extra["prompt_hash"] for p in proposals}) == 2
    for p in proposals:
        assert p.origin == "hf" and p.structure is None and p.reason.startswith("parse_error: ")
        assert p.extra["cost_usd"] == 0.0 and p.extra["completion_tokens"] <= 16


def test_missing_local_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "qwen-7b"
    with pytest.raises(LLMConfigError, match=rf"^The hf model path '{missing}' does not exist; give"):
        HFBackend(missing)


def test_offline_hub_id_not_in_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        LLMConfigError, match=r"'matsearch-test/absent-model' is not in the local Hugging Face"
    ):
        HFBackend("matsearch-test/absent-model")


def test_folder_without_model_or_chat_template(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LLMConfigError, match="holds no config.json"):
        HFBackend(tmp_path / "empty")
    plain = shutil.copytree(tiny_model, tmp_path / "no-template")
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(LLMConfigError, match="has no chat template"):
        HFBackend(plain)
    with pytest.raises(LLMConfigError, match="dtype 'float8' is not supported; allowed: auto, float32"):
        HFBackend(tiny_model, dtype="float8")


def test_factory_builds_the_hf_proposer(tiny_model: Path, tmp_path: Path) -> None:
    from matsearch.proposers.registry import build_proposer
    from matsearch.spec import HFProposerSpec

    spec = HFProposerSpec(model=str(tiny_model), device="cpu", dtype="float32", max_tokens=64)
    proposer = build_proposer(spec, tmp_path)
    assert proposer.name == "hf" and proposer.max_tokens == 64
    assert repr(proposer.backend) == f"HFBackend(model='{tiny_model}', device='cpu')"
