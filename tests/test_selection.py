"""Selection: Pareto rank + crowding, weighted sums, constraints, deterministic ties."""

from __future__ import annotations

import numpy as np

from matsearch.candidate import Candidate
from matsearch.selection import minimisation_matrix, pareto_ranks, select
from matsearch.spec import Objective


def _cands(rows: list[dict[str, float]]) -> list[Candidate]:
    return [Candidate(id=i, generation=0, origin="t", operator="t", scores=r) for i, r in enumerate(rows)]


def test_pareto_front_comes_first_and_dominated_last() -> None:
    objs = [
        Objective(name="e_above_hull", direction="min"),
        Objective(name="energy_per_atom", direction="max"),
    ]
    pool = _cands(
        [
            {"e_above_hull": 0.0, "energy_per_atom": -5.0},  # front
            {"e_above_hull": 0.2, "energy_per_atom": -1.0},  # front
            {"e_above_hull": 0.3, "energy_per_atom": -6.0},  # dominated by 0 (and 1)
            {"e_above_hull": 0.1, "energy_per_atom": -3.0},  # front
        ]
    )
    ranks, _ = pareto_ranks(minimisation_matrix(pool, objs))
    assert ranks.tolist() == [0, 0, 1, 0]
    assert [c.id for c in select(pool, objs, 4)][-1] == 2


def test_target_direction_and_missing_scores() -> None:
    objs = [Objective(name="formation_energy", target=-1.0)]
    pool = _cands([{"formation_energy": -0.2}, {"formation_energy": -1.1}, {}, {"formation_energy": -2.5}])
    values = minimisation_matrix(pool, objs)[:, 0]
    np.testing.assert_allclose(values[[0, 1, 3]], [0.8, 0.1, 1.5])
    assert values[2] > 1.5  # a missing score is worse than every real one
    assert [c.id for c in select(pool, objs, 4)] == [1, 0, 3, 2]


def test_constraints_put_violators_last_even_when_better() -> None:
    objs = [
        Objective(name="e_above_hull", direction="min", bounds=(None, 0.1)),
        Objective(name="deformation_energy", direction="min"),
    ]
    pool = _cands(
        [
            {"e_above_hull": 0.5, "deformation_energy": 0.0},  # violates e_hull ≤ 0.1 by 0.4
            {"e_above_hull": 0.05, "deformation_energy": 0.3},
            {"e_above_hull": 0.2, "deformation_energy": 0.0},  # violates by 0.1
        ]
    )
    assert [c.id for c in select(pool, objs, 3)] == [1, 2, 0]


def test_weighted_sum_follows_weights() -> None:
    pool = _cands([{"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 0.0}])
    objs_a = [
        Objective(name="e_above_hull", weight=3.0),
        Objective(name="energy_per_atom", weight=1.0),
    ]
    for c in pool:
        c.scores = {"e_above_hull": c.scores["a"], "energy_per_atom": c.scores["b"]}
    assert [c.id for c in select(pool, objs_a, 1, "weighted")] == [0]
    objs_b = [
        Objective(name="e_above_hull", weight=1.0),
        Objective(name="energy_per_atom", weight=3.0),
    ]
    assert [c.id for c in select(pool, objs_b, 1, "weighted")] == [1]


def test_ties_break_by_id_whatever_the_input_order() -> None:
    objs = [Objective(name="e_above_hull")]
    pool = _cands([{"e_above_hull": 0.1}] * 5)
    assert [c.id for c in select(pool[::-1], objs, 3)] == [0, 1, 2]
