"""Survivor selection: constraints first, then Pareto rank + crowding distance, or a weighted sum.

pymoo does the non-dominated sorting and crowding maths. Ties are broken by candidate id, so a
seeded run always keeps the same survivors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from matsearch.candidate import Candidate
from matsearch.spec import Objective


def minimisation_matrix(candidates: Sequence[Candidate], objectives: Sequence[Objective]) -> np.ndarray:
    """[n_candidates, n_objectives] values to minimise: x for min, −x for max, |x − t| for a target.

    A missing or non-finite score becomes worse than every finite value in its column.
    """
    values = np.array(
        [[c.scores.get(o.name, np.nan) for o in objectives] for c in candidates], dtype=float
    ).reshape(len(candidates), len(objectives))
    for j, objective in enumerate(objectives):
        if objective.target is not None:
            values[:, j] = np.abs(values[:, j] - objective.target)
        elif objective.direction == "max":
            values[:, j] = -values[:, j]
        column = values[:, j]
        bad = ~np.isfinite(column)
        if bad.any():
            finite = column[~bad]
            column[bad] = (finite.max() + 1.0 + abs(finite.max())) if finite.size else 0.0
    return values


def constraint_violation(candidates: Sequence[Candidate], objectives: Sequence[Objective]) -> np.ndarray:
    """Summed distance outside each objective's bounds (0 for feasible); missing scores violate by inf."""
    violation = np.zeros(len(candidates))
    for i, candidate in enumerate(candidates):
        for objective in objectives:
            if objective.bounds is None:
                continue
            lower, upper = objective.bounds
            value = candidate.scores.get(objective.name)
            if value is None or not np.isfinite(value):
                violation[i] = np.inf
                continue
            if lower is not None and value < lower:
                violation[i] += lower - value
            if upper is not None and value > upper:
                violation[i] += value - upper
    return violation


def pareto_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated front index (0 = best) and crowding distance within the front, per row."""
    ranks = np.zeros(len(values), dtype=int)
    crowding = np.zeros(len(values))
    if len(values) == 0:
        return ranks, crowding
    for rank, front in enumerate(NonDominatedSorting().do(values)):
        ranks[front] = rank
        crowding[front] = calc_crowding_distance(values[front]) if len(front) > 2 else np.inf
    return ranks, crowding


def weighted_sum(values: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """Σ w_j · (x_j − min_j)/(max_j − min_j): each column scaled to [0, 1] over the pool."""
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    weights = np.array([o.weight for o in objectives])
    return ((values - low) / span) @ weights


def _pareto_keys(values: np.ndarray, objectives: Sequence[Objective]) -> tuple[np.ndarray, ...]:
    """Front index first, then the larger crowding distance (np.lexsort order: last key first)."""
    ranks, crowding = pareto_ranks(values)
    return -crowding, ranks


def _weighted_keys(values: np.ndarray, objectives: Sequence[Objective]) -> tuple[np.ndarray, ...]:
    """The smaller weighted sum first."""
    return (weighted_sum(values, objectives),)


# `selection` -> the sort keys of a method, applied after demotion and constraint violation and
# before the id (the spec's Literal lists the same names; a test keeps them equal)
SELECTIONS: dict[str, Callable[[np.ndarray, Sequence[Objective]], tuple[np.ndarray, ...]]] = {
    "pareto": _pareto_keys,
    "weighted": _weighted_keys,
}


def select(
    candidates: Sequence[Candidate],
    objectives: Sequence[Objective],
    n: int,
    method: str = "pareto",
    *,
    demote: Callable[[Candidate], bool] | None = None,
) -> list[Candidate]:
    """The best `n` candidates, best first. Candidates for which `demote` is true (artefacts) come
    after all others; then feasible before infeasible (less violation first)."""
    if not candidates:
        return []
    values = minimisation_matrix(candidates, objectives)
    violation = constraint_violation(candidates, objectives)
    demoted = np.array([bool(demote and demote(c)) for c in candidates])
    ids = np.array([c.id if c.id is not None else -1 for c in candidates])
    if method not in SELECTIONS:
        raise ValueError(f"unknown selection method '{method}'; allowed: {', '.join(SELECTIONS)}")
    order = np.lexsort((ids, *SELECTIONS[method](values, objectives), violation, demoted))
    return [candidates[i] for i in order[:n]]
