"""Build an LLMProposer from one `proposers` entry of the run spec."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matsearch.proposers.base import RunContext
from matsearch.proposers.llm.proposer import LLMProposer
from matsearch.proposers.prompts import load_templates

if TYPE_CHECKING:
    from matsearch.spec import HFProposerSpec, OpenAIProposerSpec


def build_llm_proposer(
    spec: OpenAIProposerSpec | HFProposerSpec, cache_path: Path, context: RunContext | None = None
) -> LLMProposer:
    """The proposer of an `openai` or `hf` spec entry; answers are cached in `cache_path`;
    `context` gives the run's objectives and validity check."""
    if spec.kind == "openai":
        from matsearch.proposers.llm.backends.openai_backend import OpenAIBackend

        backend = OpenAIBackend(
            spec.model,
            base_url=spec.base_url,
            api_key=spec.api_key.get_secret_value() if spec.api_key is not None else None,
            cache_path=cache_path,
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            max_attempts=spec.max_retries + 1,
            structured_output=spec.structured_output,
        )
    else:
        from matsearch.proposers.llm.backends.hf_backend import HFBackend

        backend = HFBackend(
            spec.model,
            device=spec.device,
            dtype=spec.dtype,
            batch_size=spec.batch_size,
            cache_path=cache_path,
        )
    templates = load_templates(spec.templates)
    return LLMProposer(
        backend,
        templates,
        spec.objective_text or "",
        context=context,
        k_parents=spec.k_parents,
        structures_per_prompt=spec.structures_per_prompt,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        repair_attempts=spec.repair_attempts,
        template_examples=spec.template_examples,
    )
