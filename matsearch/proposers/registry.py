"""Proposer backends by name, and how a generation's children are shared between them."""

from __future__ import annotations

from pathlib import Path

from matsearch.proposers.base import Proposer, RunContext
from matsearch.spec import BuiltinProposerSpec, ProposerSpec


def build_proposer(spec: ProposerSpec, run_dir: Path, context: RunContext | None = None) -> Proposer:
    """The proposer for one entry of the spec's `proposers` list. `context` tells LLM proposers
    the run's objectives and validity check; the builtin proposer redraws children that fail its
    `screen` (LLM proposers are judged on what they propose)."""
    if isinstance(spec, BuiltinProposerSpec):
        from matsearch.proposers.builtin import BuiltinProposer

        return BuiltinProposer(weights=spec.weights, screen=None if context is None else context.screen)
    from matsearch.proposers.llm.factory import build_llm_proposer

    return build_llm_proposer(spec, cache_path=run_dir / "llm_cache.sqlite", context=context)


def check_proposer(spec: ProposerSpec, index: int) -> None:
    """Raise a MatsearchError now for what would stop proposer `proposers[index]` once the run has
    started (LLM entries: templates, package, API key, model); the builtin proposer needs nothing."""
    if isinstance(spec, BuiltinProposerSpec):
        return
    from matsearch.proposers.llm.preflight import check_llm_proposer

    check_llm_proposer(spec, index)


def split_children(n_children: int, fractions: list[float]) -> list[int]:
    """Share `n_children` by the given fractions (largest remainder; sums exactly to n_children)."""
    total = sum(fractions)
    exact = [n_children * f / total for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n_children - sum(counts)]:
        counts[i] += 1
    return counts
