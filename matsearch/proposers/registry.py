"""Proposer kinds by name (`PROPOSERS`, one line each: how to build one, how to check it before a
run), and how a generation's children are shared between proposers. Heavy packages (pyxtal,
openai, transformers) load only when a proposer of their kind is built or checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matsearch.proposers.base import Proposer, RunContext
from matsearch.proposers.llm.factory import build_hf_proposer, build_openai_proposer
from matsearch.proposers.llm.preflight import check_hf_proposer, check_openai_proposer
from matsearch.spec import BuiltinProposerSpec, ProposerSpec


@dataclass(frozen=True)
class ProposerKind:
    """One `proposers[i].kind`. `build(spec, run_dir, context)` makes the proposer of a spec entry
    (files it keeps, such as an answer cache, go in `run_dir`); `check(spec, index)` raises a
    MatsearchError naming `proposers[index]` for what would stop the run once it has started."""

    build: Callable[[Any, Path, RunContext | None], Proposer]
    check: Callable[[Any, int], None]


def _build_builtin(spec: BuiltinProposerSpec, run_dir: Path, context: RunContext | None) -> Proposer:
    from matsearch.proposers.builtin import BuiltinProposer

    return BuiltinProposer(weights=spec.weights, screen=None if context is None else context.screen)


def _check_builtin(spec: BuiltinProposerSpec, index: int) -> None:
    """Nothing to check: the spec's own validation covers the operator weights."""


# `proposers[i].kind` -> its declaration (the spec's union lists the same kinds; a test keeps them equal)
PROPOSERS: dict[str, ProposerKind] = {
    "builtin": ProposerKind(build=_build_builtin, check=_check_builtin),
    "openai": ProposerKind(build=build_openai_proposer, check=check_openai_proposer),
    "hf": ProposerKind(build=build_hf_proposer, check=check_hf_proposer),
}


def build_proposer(spec: ProposerSpec, run_dir: Path, context: RunContext | None = None) -> Proposer:
    """The proposer for one entry of the spec's `proposers` list. `context` tells LLM proposers
    the run's objectives and validity check; the builtin proposer redraws children that fail its
    `screen` (LLM proposers are judged on what they propose)."""
    return PROPOSERS[spec.kind].build(spec, run_dir, context)


def check_proposer(spec: ProposerSpec, index: int) -> None:
    """Raise a MatsearchError now for what would stop proposer `proposers[index]` once the run has
    started (LLM entries: templates, package, API key, model); the builtin proposer needs nothing."""
    PROPOSERS[spec.kind].check(spec, index)


def split_children(n_children: int, fractions: list[float]) -> list[int]:
    """Share `n_children` by the given fractions (largest remainder; sums exactly to n_children)."""
    total = sum(fractions)
    exact = [n_children * f / total for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n_children - sum(counts)]:
        counts[i] += 1
    return counts
