"""The offline proposer: chemistry-aware operators instead of an LLM.

Each child is made by one operator drawn with the configured weights among those that can apply:
substitution and strain and swap need one parent, crossover two, random none. In CSP
(`limits.target` set) substitution is never drawn because it changes the composition; swap,
strain and composition-preserving crossover keep it, and random structures use the target.
If a drawn operator cannot produce a child (e.g. swap on an element), another draw is made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.errors import SpecError
from matsearch.proposers.base import Proposal, StructureCheck
from matsearch.proposers.operators import OperatorResult, crossover, strain, substitute, swap
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.random_structures import (
    max_formula_units,
    random_composition,
    random_structure,
    random_target_structure,
)
from matsearch.structures.validity import is_plausible_composition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinOperator:
    """One builtin operator: its default weight, how many parents it takes and what it does."""

    name: str
    default_weight: float
    parents: int
    apply: Callable[[list[Structure], ChemistryLimits, np.random.Generator], OperatorResult]


# The builtin operators, declared once (the spec's `weights` keys: spec.BUILTIN_OPERATORS, tested
# equal). Default weights measured on the discovery panel (benchmarks/bench_discovery.py): of 100
# relaxed children of each operator, metastable and new were swap 45, crossover 36, substitution
# 0-10, random 3, and strained copies relax back into their parent (screened out as duplicates).
OPERATORS: dict[str, BuiltinOperator] = {
    o.name: o
    for o in (
        BuiltinOperator("substitution", 0.25, 1, lambda s, limits, rng: substitute(s[0], limits, rng)),
        BuiltinOperator("strain", 0.05, 1, lambda s, limits, rng: strain(s[0], limits, rng)),
        BuiltinOperator("swap", 0.25, 1, lambda s, limits, rng: swap(s[0], limits, rng)),
        BuiltinOperator("crossover", 0.4, 2, lambda s, limits, rng: crossover(s[0], s[1], limits, rng)),
        BuiltinOperator("random", 0.05, 0, lambda s, limits, rng: _random(limits, rng)),
    )
}
DEFAULT_WEIGHTS: dict[str, float] = {name: o.default_weight for name, o in OPERATORS.items()}
_RANDOM_START_TRIES = 5  # pyxtal attempts per generation-0 structure


class BuiltinProposer:
    """Proposes children with substitution, strain, swap, crossover and random operators.

    weights: relative probability of each operator (missing names get 0); None uses
        DEFAULT_WEIGHTS. screen: the run's screen (RunContext.screen, which starts with the run's
        validity check, so a child that passed it is proposed as `valid`); a child that fails it
        (invalid, already seen) or the chemistry
        prior (an ionic composition without ICSD oxidation states summing to zero; not applied to a
        CSP target, whose composition the user fixed) is discarded
        and another operator draw made; a child records how many draws were screened out.
        max_attempts: operator draws per child before giving up on it.
    """

    name = "builtin"

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        screen: StructureCheck | None = None,
        max_attempts: int = 20,
    ) -> None:
        self.weights = _checked_weights(DEFAULT_WEIGHTS if weights is None else weights)
        self.screen = screen
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
        operator, screened, last_reason = names[0], 0, "the operators did not apply"
        for _ in range(self.max_attempts):
            operator = names[int(rng.choice(len(names), p=probabilities))]
            chosen = [
                pool[int(i)] for i in rng.choice(len(pool), size=OPERATORS[operator].parents, replace=False)
            ]
            result = OPERATORS[operator].apply([s for _, s in chosen], limits, rng)
            if result is None:
                continue
            child, info = result
            why = _implausible(child, limits) or (self.screen(child) if self.screen is not None else None)
            if why is not None:
                screened, last_reason = screened + 1, why
                continue
            return Proposal(
                structure=child,
                operator=operator,
                parents=[p.id for p, _ in chosen if p.id is not None],
                origin=self.name,
                extra=info | ({"screened": screened} if screened else {}),
                valid=self.screen is not None,  # the run's screen starts with its validity check
            )
        return Proposal(
            structure=None,
            operator=operator,
            parents=[],
            origin=self.name,
            reason=f"no_child: {self.max_attempts} operator draws produced no usable structure "
            f"({screened} screened out; last: {last_reason})",
        )

    def _operator_distribution(self, n_parents: int, limits: ChemistryLimits) -> tuple[list[str], np.ndarray]:
        """Operators that can run with `n_parents` parents, with normalised probabilities."""
        usable = {
            name: w
            for name, w in self.weights.items()
            if w > 0
            and n_parents >= OPERATORS[name].parents
            and not (name == "substitution" and limits.target is not None)
        }
        if not usable:
            usable = {"random": 1.0}
        names = sorted(usable)
        weights = np.array([usable[n] for n in names])
        return names, weights / weights.sum()


def _implausible(structure: Structure, limits: ChemistryLimits) -> str | None:
    """The builtin chemistry prior (validity.is_plausible_composition) as a screening reason; a CSP
    target's composition is the user's choice, so it is never judged."""
    if limits.target is not None or is_plausible_composition(structure.composition):
        return None
    return f"implausible: {structure.composition.reduced_formula} has no ICSD oxidation states summing to 0"


def _random(limits: ChemistryLimits, rng: np.random.Generator, units: int | None = None) -> OperatorResult:
    """A random symmetric crystal within the limits; for CSP, of the target with `units` formula
    units (default: drawn uniformly from those that fit in max_atoms)."""
    if limits.target is not None:
        max_units = max_formula_units(limits.target, limits.max_atoms)
        if max_units < 1:
            return None
        units = units or int(rng.integers(1, max_units + 1))
        structure = random_target_structure(limits.target, units, rng)
    else:
        composition = random_composition(limits, rng)
        structure = None if composition is None else random_structure(composition, rng)
    if structure is None:
        return None
    info: dict[str, Any] = {"formula": structure.composition.formula.replace(" ", "")}
    return structure, info


def random_starts(limits: ChemistryLimits, n: int, rng: np.random.Generator) -> list[Proposal]:
    """`n` random symmetric structures for generation 0. For CSP they take every formula-unit count
    that fits in max_atoms in turn (Z = 1, 2, ..., 1, 2, ...), so small and large cells are both
    explored; each proposal whose structure pyxtal could not build says so."""
    proposals = []
    max_units = max(1, max_formula_units(limits.target, limits.max_atoms)) if limits.target else 1
    for i in range(n):
        units = i % max_units + 1 if limits.target is not None else None
        result = next(
            (r for _ in range(_RANDOM_START_TRIES) if (r := _random(limits, rng, units)) is not None), None
        )
        if result is None:
            proposals.append(
                Proposal(
                    None, "random", [], BuiltinProposer.name, reason="no_child: pyxtal built no structure"
                )
            )
        else:
            proposals.append(Proposal(result[0], "random", [], BuiltinProposer.name, extra=result[1]))
    return proposals


def _checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(OPERATORS))
    if unknown:
        raise SpecError(
            f"unknown builtin operator(s) {', '.join(unknown)}; choose from {', '.join(sorted(OPERATORS))}"
        )
    bad = {k: v for k, v in weights.items() if not (v >= 0 and np.isfinite(v))}
    if bad:
        raise SpecError(f"builtin operator weights must be finite and ≥ 0, got {bad}")
    if sum(weights.values()) <= 0:
        raise SpecError("builtin operator weights must not all be zero")
    return {name: float(weights.get(name, 0.0)) for name in OPERATORS}
