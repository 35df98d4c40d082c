"""Build an LLMProposer from one `openai` or `hf` entry of the run spec's `proposers` list (the
chat client is imported only here, when a proposer is built)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matsearch.proposers.base import RunContext
from matsearch.proposers.llm.backends.base import ChatBackend
from matsearch.proposers.llm.proposer import LLMProposer
from matsearch.proposers.prompts import load_templates

if TYPE_CHECKING:
    from matsearch.spec import HFProposerSpec, OpenAIProposerSpec

CACHE_NAME = "llm_cache.sqlite"  # the answers of every LLM proposer of a run, in its folder


def build_openai_proposer(
    spec: OpenAIProposerSpec, run_dir: Path, context: RunContext | None = None
) -> LLMProposer:
    """The proposer of an `openai` entry: an OpenAI-compatible server, answers cached in
    `run_dir`/llm_cache.sqlite; `context` gives the run's objectives and validity check."""
    from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend(
        spec.model,
        base_url=spec.base_url,
        api_key=spec.api_key.get_secret_value() if spec.api_key is not None else None,
        cache_path=run_dir / CACHE_NAME,
        max_concurrency=spec.max_concurrency,
        timeout_s=spec.timeout_s,
        max_attempts=spec.max_retries + 1,
        structured_output=spec.structured_output,
    )
    return _llm_proposer(spec, backend, context)


def build_hf_proposer(spec: HFProposerSpec, run_dir: Path, context: RunContext | None = None) -> LLMProposer:
    """The proposer of an `hf` entry: a transformers model in this process, answers cached in
    `run_dir`/llm_cache.sqlite; `context` gives the run's objectives and validity check."""
    from matsearch.proposers.llm.backends.hf_backend import HFBackend

    backend = HFBackend(
        spec.model,
        device=spec.device,
        dtype=spec.dtype,
        batch_size=spec.batch_size,
        cache_path=run_dir / CACHE_NAME,
    )
    return _llm_proposer(spec, backend, context)


def _llm_proposer(
    spec: OpenAIProposerSpec | HFProposerSpec, backend: ChatBackend, context: RunContext | None
) -> LLMProposer:
    """The prompting settings every LLM kind shares, around its chat backend."""
    return LLMProposer(
        backend,
        load_templates(spec.templates),
        spec.objective_text or "",
        context=context,
        k_parents=spec.k_parents,
        structures_per_prompt=spec.structures_per_prompt,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        repair_attempts=spec.repair_attempts,
        template_examples=spec.template_examples,
    )
