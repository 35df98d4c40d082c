"""The offline proposer: chemistry-aware operators instead of an LLM.

Each child is made by one operator drawn with the configured weights among those that can apply:
substitution and strain and swap need one parent, crossover two, random none. In CSP
(`limits.target` set) substitution is never drawn because it changes the composition; swap,
strain and composition-preserving crossover keep it, and random structures use the target.
If a drawn operator cannot produce a child (e.g. swap on an element), another draw is made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.errors import SpecError
from matsearch.proposers.base import Proposal
from matsearch.proposers.operators import OperatorResult, crossover, strain, substitute, swap
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.random_structures import (
    random_composition,
    random_structure,
    target_cell_composition,
)

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS: dict[str, float] = {
    "substitution": 0.3,
    "strain": 0.2,
    "swap": 0.1,
    "crossover": 0.25,
    "random": 0.15,
}
_PARENTS_NEEDED = {"substitution": 1, "strain": 1, "swap": 1, "crossover": 2, "random": 0}


class BuiltinProposer:
    """Proposes children with substitution, strain, swap, crossover and random operators.

    weights: relative probability of each operator (missing names get 0); None uses
        DEFAULT_WEIGHTS. max_attempts: operator draws per child before giving up on it.
    """

    name = "builtin"

    def __init__(
        self, weights: Mapping[str, float] | None = None, *, max_attempts: int = 10
    ) -> None:
        self.weights = _checked_weights(DEFAULT_WEIGHTS if weights is None else weights)
        self.max_attempts = max_attempts

    def propose(
        self,
        parents: list[Candidate],
        n_children: int,
        limits: ChemistryLimits,
        rng: np.random.Generator,
    ) -> list[Proposal]:
        """Return `n_children` proposals; one whose every operator draw failed has structure None
        and a reason."""
        pool = [(p, s) for p in parents if (s := p.relaxed or p.structure) is not None]
        return [self._propose_one(pool, limits, rng) for _ in range(n_children)]

    def _propose_one(
        self,
        pool: list[tuple[Candidate, Structure]],
        limits: ChemistryLimits,
        rng: np.random.Generator,
    ) -> Proposal:
        names, probabilities = self._operator_distribution(len(pool), limits)
        operator = names[0]
        for _ in range(self.max_attempts):
            operator = names[int(rng.choice(len(names), p=probabilities))]
            chosen = [
                pool[int(i)]
                for i in rng.choice(len(pool), size=_PARENTS_NEEDED[operator], replace=False)
            ]
            result = _apply(operator, [s for _, s in chosen], limits, rng)
            if result is not None:
                child, info = result
                return Proposal(
                    structure=child,
                    operator=operator,
                    parents=[p.id for p, _ in chosen if p.id is not None],
                    origin=self.name,
                    extra=info,
                )
        return Proposal(
            structure=None,
            operator=operator,
            parents=[],
            origin=self.name,
            reason=f"no_child: {self.max_attempts} operator draws produced no structure",
        )

    def _operator_distribution(
        self, n_parents: int, limits: ChemistryLimits
    ) -> tuple[list[str], np.ndarray]:
        """Operators that can run with `n_parents` parents, with normalised probabilities."""
        usable = {
            name: w
            for name, w in self.weights.items()
            if w > 0
            and n_parents >= _PARENTS_NEEDED[name]
            and not (name == "substitution" and limits.target is not None)
        }
        if not usable:
            usable = {"random": 1.0}
        names = sorted(usable)
        weights = np.array([usable[n] for n in names])
        return names, weights / weights.sum()


def _apply(
    operator: str, structures: list[Structure], limits: ChemistryLimits, rng: np.random.Generator
) -> OperatorResult:
    if operator == "substitution":
        return substitute(structures[0], limits, rng)
    if operator == "strain":
        return strain(structures[0], limits, rng)
    if operator == "swap":
        return swap(structures[0], limits, rng)
    if operator == "crossover":
        return crossover(structures[0], structures[1], limits, rng)
    return _random(limits, rng)


def _random(limits: ChemistryLimits, rng: np.random.Generator) -> OperatorResult:
    if limits.target is not None:
        composition = target_cell_composition(limits.target, limits.max_atoms, rng)
    else:
        composition = random_composition(limits, rng)
    if composition is None:
        return None
    structure = random_structure(composition, rng)
    if structure is None:
        return None
    info: dict[str, Any] = {"formula": composition.formula.replace(" ", "")}
    return structure, info


def _checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(_PARENTS_NEEDED))
    if unknown:
        raise SpecError(
            f"unknown builtin operator(s) {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(_PARENTS_NEEDED))}"
        )
    bad = {k: v for k, v in weights.items() if not (v >= 0 and np.isfinite(v))}
    if bad:
        raise SpecError(f"builtin operator weights must be finite and ≥ 0, got {bad}")
    if sum(weights.values()) <= 0:
        raise SpecError("builtin operator weights must not all be zero")
    return {name: float(weights.get(name, 0.0)) for name in _PARENTS_NEEDED}
