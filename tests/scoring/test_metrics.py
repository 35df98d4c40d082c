"""Generation metrics: rates, novelty and S.U.N. of marked candidates, hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from matsearch.candidate import Candidate, Flag, Novelty, Status
from matsearch.scoring.metrics import (
    generation_metrics,
    hypervolume,
    hypervolume_reference,
)
from matsearch.spec import Objective


def _child(
    cid: int,
    status: Status,
    e_hull: float | None = None,
    novelty: Novelty | None = None,
    flags: tuple[Flag, ...] = (),
    **scores: float,
) -> Candidate:
    candidate = Candidate(id=cid, generation=1, origin="builtin", operator="strain", status=status)
    candidate.novelty = novelty
    candidate.flags = list(flags)
    candidate.e_above_hull = e_hull
    candidate.scores = dict(scores)
    if e_hull is not None:
        candidate.scores["e_above_hull"] = e_hull
    return candidate


def test_generation_rates_and_sun() -> None:
    new, known = Novelty.NEW_STRUCTURE, Novelty.KNOWN
    relaxed_duplicate = _child(9, Status.DUPLICATE, 0.0, new)
    relaxed_duplicate.duplicate_of = 4
    children = [
        _child(1, Status.INVALID),
        _child(2, Status.DUPLICATE),
        _child(3, Status.FAILED),
        _child(4, Status.SCORED, -0.02, new),  # stable, new → S.U.N.
        _child(5, Status.SCORED, -0.01, known),  # stable, known
        _child(6, Status.SCORED, 0.02, Novelty.NEW_COMPOSITION),  # metastable ≤ 0.03, new
        _child(7, Status.SCORED, 0.08, known),  # ≤ 0.1, known
        _child(8, Status.SCORED, 0.5, new),  # unstable, new
        _child(10, Status.SCORED, -0.1, new, (Flag.MOLECULAR,)),  # stable, new, but an artefact
        relaxed_duplicate,  # relaxed into candidate 4: counted neither as unique nor as S.U.N.
    ]
    metrics = generation_metrics(children, children[3:8], [Objective(name="e_above_hull")], None)
    assert metrics == {
        "n_proposed": 10,
        "n_valid": 9,
        "n_unique": 7,
        "n_scored": 6,
        "validity_rate": 9 / 10,
        "uniqueness_rate": 7 / 9,
        "rate_e_hull_le_0": 3 / 10,
        "rate_e_hull_le_0.03": 4 / 10,
        "rate_e_hull_le_0.1": 5 / 10,
        "n_relaxed_duplicates": 1,
        "n_known": 2,
        "n_novel": 4,
        "n_artefacts": 1,
        "novelty_rate": 4 / 6,
        "n_sun": 1,
        "sun_rate": 1 / 10,
        "hypervolume": None,
    }
    looser = generation_metrics(children, [], [Objective(name="e_above_hull")], None, stable_threshold=0.03)
    assert looser["n_sun"] == 2
    admitted = generation_metrics(children, [], [Objective(name="e_above_hull")], None, admit=["molecular"])
    assert admitted["n_sun"] == 2 and admitted["n_artefacts"] == 0


def test_empty_generation() -> None:
    metrics = generation_metrics([], [], [Objective(name="e_above_hull")], None)
    assert metrics["validity_rate"] == 0.0 and metrics["uniqueness_rate"] == 0.0
    assert metrics["n_novel"] == 0 and metrics["n_sun"] == 0 and metrics["novelty_rate"] == 0.0


OBJECTIVES = [Objective(name="e_above_hull"), Objective(name="deformation_energy")]


def test_hypervolume_of_a_known_front() -> None:
    """Points (0, .3), (.1, .1), (.3, 0) under ref (.5, .5): 0.5·0.2 + 0.4·0.2 + 0.2·0.1 = 0.20."""
    population = [
        _child(1, Status.SCORED, 0.0, deformation_energy=0.3),
        _child(2, Status.SCORED, 0.1, deformation_energy=0.1),
        _child(3, Status.SCORED, 0.3, deformation_energy=0.0),
        _child(4, Status.SCORED, 0.4, deformation_energy=0.4),  # dominated: adds nothing
        _child(5, Status.SCORED, 0.9, deformation_energy=0.0),  # beyond the reference: nothing
        _child(6, Status.SCORED, 0.0),  # missing score: nothing
    ]
    assert hypervolume(population, OBJECTIVES, [0.5, 0.5]) == pytest.approx(0.20, abs=1e-12)
    metrics = generation_metrics(population, population, OBJECTIVES, [0.5, 0.5])
    assert metrics["hypervolume"] == pytest.approx(0.20, abs=1e-12)


def test_hypervolume_maximised_and_target_objectives() -> None:
    """max → −x and target → |x − t| before measuring, as in selection."""
    objectives = [
        Objective(name="e_above_hull"),
        Objective(name="deformation_energy", direction="max"),
    ]
    population = [_child(1, Status.SCORED, 0.1, deformation_energy=0.4)]  # → (0.1, −0.4)
    assert hypervolume(population, objectives, [0.5, 0.0]) == pytest.approx(0.4 * 0.4)
    target = [Objective(name="e_above_hull"), Objective(name="deformation_energy", target=0.2)]
    population = [_child(1, Status.SCORED, 0.1, deformation_energy=0.35)]  # → (0.1, 0.15)
    assert hypervolume(population, target, [0.5, 0.5]) == pytest.approx(0.4 * 0.35)


def test_reference_point_rules() -> None:
    population = [
        _child(1, Status.SCORED, 0.0, deformation_energy=0.2, energy_per_atom=-5.0),
        _child(2, Status.SCORED, 0.4, deformation_energy=0.2, energy_per_atom=-4.0),
    ]
    # built-in defaults: e_above_hull 0.1 eV/atom, deformation_energy 1.0 eV/atom
    np.testing.assert_allclose(hypervolume_reference(population, OBJECTIVES), [0.1, 1.0])
    np.testing.assert_allclose(hypervolume_reference([], OBJECTIVES), [0.1, 1.0])
    # a fixed value wins; a maximised objective's value is negated like its scores
    mixed = [
        Objective(name="e_above_hull"),
        Objective(name="deformation_energy", direction="max"),
        Objective(name="energy_per_atom"),
    ]
    ref = hypervolume_reference(population, mixed, fixed={"deformation_energy": 0.05}, margin=0.1)
    # energy_per_atom (no default) from the population: worst −4.0 + 0.1 · span 1.0
    np.testing.assert_allclose(ref, [0.1, -0.05, -3.9])
    constant = [_child(3, Status.SCORED, 0.0, energy_per_atom=-5.0)]
    ref = hypervolume_reference(constant, [Objective(name="energy_per_atom")])
    np.testing.assert_allclose(ref, [-5.0 + 0.1 * 5.0])  # span falls back to max(|worst|, 1)
    assert hypervolume(population, mixed, hypervolume_reference(population, mixed)) > 0


def test_reference_point_errors() -> None:
    with pytest.raises(ValueError, match="ref_point has 1 values but there are 2 objectives"):
        hypervolume([], OBJECTIVES, [1.0])
    with pytest.raises(ValueError, match="^the hypervolume reference of energy_per_atom needs a population"):
        hypervolume_reference([], [Objective(name="energy_per_atom")])
    with pytest.raises(ValueError, match="given for band_gap, which is not an objective"):
        hypervolume_reference([], OBJECTIVES, fixed={"band_gap": 1.0})
