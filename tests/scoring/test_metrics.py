"""Generation metrics: novelty against real MP-20 structures, rates, S.U.N. and hypervolume."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.scoring.metrics import (
    NoveltyIndex,
    generation_metrics,
    hypervolume,
    hypervolume_reference,
)
from matsearch.spec import Objective


def _rocksalt_nacl(a: float = 5.69) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])


def _cscl_nacl() -> Structure:
    return Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _zincblende_gaas() -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(5.75), ["Ga", "As"], [[0, 0, 0], [0.25] * 3])


@pytest.fixture(scope="module")
def mp20_novelty(data_dir) -> NoveltyIndex:
    return NoveltyIndex.from_mp20()


def test_known_mp20_structure_is_not_novel(mp20_novelty: NoveltyIndex) -> None:
    """Rock-salt NaCl is mp-22862 (MP-20 val); a 4 % larger cell still matches (volumes scaled)."""
    assert mp20_novelty.match(_rocksalt_nacl()) == "mp-22862"
    assert mp20_novelty.match(_rocksalt_nacl(5.92)) == "mp-22862"
    assert not mp20_novelty.is_novel(_rocksalt_nacl().get_primitive_structure())


def test_new_polymorph_and_new_formula_are_novel(mp20_novelty: NoveltyIndex) -> None:
    """MP-20 train+val hold NaCl only as Fm-3m and P6_3/mmc, and no GaAs at all."""
    assert mp20_novelty.is_novel(_cscl_nacl())
    assert mp20_novelty.match(_zincblende_gaas()) is None


def test_novelty_uses_only_the_requested_splits(data_dir) -> None:
    train_only = NoveltyIndex.from_mp20(splits=("train",))
    assert train_only.is_novel(_rocksalt_nacl())  # mp-22862 is in val, not train


def test_own_reference_structures() -> None:
    index = NoveltyIndex.from_structures({"my-rocksalt": _rocksalt_nacl(), "my-zb": _zincblende_gaas()})
    assert index.match(_rocksalt_nacl(5.5) * (2, 1, 1)) == "my-rocksalt"
    assert index.match(_cscl_nacl()) is None


def _child(
    cid: int,
    status: Status,
    e_hull: float | None = None,
    relaxed: Structure | None = None,
    **scores: float,
) -> Candidate:
    candidate = Candidate(id=cid, generation=1, origin="builtin", operator="strain", status=status)
    candidate.structure = relaxed
    candidate.relaxed = relaxed
    candidate.e_above_hull = e_hull
    candidate.scores = dict(scores)
    if e_hull is not None:
        candidate.scores["e_above_hull"] = e_hull
    return candidate


def test_generation_rates_and_sun(mp20_novelty: NoveltyIndex) -> None:
    children = [
        _child(1, Status.INVALID),
        _child(2, Status.DUPLICATE),
        _child(3, Status.FAILED),
        _child(4, Status.SCORED, -0.02, _cscl_nacl()),  # stable, novel → S.U.N.
        _child(5, Status.SCORED, -0.01, _rocksalt_nacl()),  # stable, known (mp-22862)
        _child(6, Status.SCORED, 0.02, _zincblende_gaas()),  # metastable ≤ 0.03, novel
        _child(7, Status.SCORED, 0.08, _rocksalt_nacl(5.8)),  # ≤ 0.1, known
        _child(8, Status.SCORED, 0.5, _zincblende_gaas()),  # unstable, novel
    ]
    metrics = generation_metrics(children, children[3:], [Objective(name="e_above_hull")], mp20_novelty, None)
    assert metrics == {
        "n_proposed": 8,
        "n_valid": 7,
        "n_unique": 6,
        "n_scored": 5,
        "validity_rate": 7 / 8,
        "uniqueness_rate": 6 / 7,
        "rate_e_hull_le_0": 2 / 8,
        "rate_e_hull_le_0.03": 3 / 8,
        "rate_e_hull_le_0.1": 4 / 8,
        "n_novel": 3,
        "novelty_rate": 3 / 5,
        "n_sun": 1,
        "sun_rate": 1 / 8,
        "hypervolume": None,
    }
    looser = generation_metrics(
        children, [], [Objective(name="e_above_hull")], mp20_novelty, None, stable_threshold=0.03
    )
    assert looser["n_sun"] == 2


def test_empty_generation_and_no_novelty_index() -> None:
    metrics = generation_metrics([], [], [Objective(name="e_above_hull")], None, None)
    assert metrics["validity_rate"] == 0.0 and metrics["uniqueness_rate"] == 0.0
    assert metrics["n_novel"] is None and metrics["n_sun"] is None


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
    metrics = generation_metrics(population, population, OBJECTIVES, None, [0.5, 0.5])
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
