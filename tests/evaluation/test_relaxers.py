"""Engine Relaxers: our batched MLIP relaxer against the chgnet package's StructOptimizer."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from matsearch.evaluation.chgnet_relaxer import CHGNetRelaxer
from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
from matsearch.evaluation.relaxer import Relaxer
from matsearch.relax_defaults import RelaxSettings
from matsearch.results import RelaxResult
from matsearch.spec import MLIPSpec


@pytest.fixture(scope="module")
def rattled(mirror_dir: Path) -> list[Structure]:
    """Two small MP-20 test structures (3-4 atoms), positions rattled by 0.05 Å (seed 0)."""
    frame = pd.read_csv(mirror_dir / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    frame = frame[frame["split"] == "test"]
    rng = np.random.default_rng(0)
    structures = []
    for cif in frame["cif"]:
        structure = Structure.from_str(cif, fmt="cif")
        if 3 <= len(structure) <= 4:
            cart = structure.cart_coords + rng.normal(0.0, 0.05, (len(structure), 3))
            structures.append(
                Structure(structure.lattice, structure.species, cart, coords_are_cartesian=True)
            )
        if len(structures) == 2:
            return structures
    raise AssertionError("MP-20 test split has fewer than two 3-4 atom structures")


@pytest.fixture(scope="module")
def ours() -> MLIPRelaxer:
    return MLIPRelaxer("chgnet-0.3.0", device="cpu")  # the same weights as the chgnet package


@pytest.fixture(scope="module")
def reference() -> CHGNetRelaxer:
    return CHGNetRelaxer(device="cpu")


@pytest.fixture(scope="module")
def both_results(
    rattled: list[Structure], ours: MLIPRelaxer, reference: CHGNetRelaxer
) -> tuple[list[RelaxResult], list[RelaxResult]]:
    return ours.relax(rattled), reference.relax(rattled)


def test_relaxers_follow_the_protocol(ours: MLIPRelaxer, reference: CHGNetRelaxer) -> None:
    assert isinstance(ours, Relaxer) and ours.name == "matsearch"
    assert isinstance(reference, Relaxer) and reference.name == "chgnet"


def test_batched_mlip_relaxation_reproduces_chgnet_structoptimizer(
    rattled: list[Structure], both_results: tuple[list[RelaxResult], list[RelaxResult]]
) -> None:
    matcher = StructureMatcher()
    for start, mine, ref in zip(rattled, *both_results, strict=True):
        assert mine.error is None and ref.error is None
        assert mine.converged and ref.converged
        assert mine.forces_max < 0.05 and ref.forces_max < 0.05
        assert mine.initial_energy_per_atom == pytest.approx(ref.initial_energy_per_atom, abs=1e-4)
        assert mine.energy_per_atom == pytest.approx(ref.energy_per_atom, abs=1e-3)
        assert mine.energy_per_atom < mine.initial_energy_per_atom
        assert abs(mine.steps - ref.steps) <= 2  # same FIRE and filter, float32 noise aside
        assert matcher.fit(mine.structure, ref.structure)
        assert mine.structure.composition == start.composition
        np.testing.assert_allclose(mine.stress_gpa, ref.stress_gpa, atol=0.05)
        np.testing.assert_allclose(mine.magmoms, ref.magmoms, atol=0.01)


def test_single_point_is_the_first_relaxation_energy_and_agrees_with_chgnet(
    rattled: list[Structure],
    ours: MLIPRelaxer,
    reference: CHGNetRelaxer,
    both_results: tuple[list[RelaxResult], list[RelaxResult]],
) -> None:
    mine, ref = ours.single_point(rattled), reference.single_point(rattled)
    assert mine == pytest.approx([r.initial_energy_per_atom for r in both_results[0]], abs=1e-5)
    assert ref == pytest.approx([r.initial_energy_per_atom for r in both_results[1]], abs=1e-5)
    assert mine == pytest.approx(ref, abs=1e-4)


@pytest.fixture(scope="module")
def relaxed(both_results: tuple[list[RelaxResult], list[RelaxResult]]) -> Structure:
    """A structure already at its minimum, so relaxing it again costs a step or two."""
    return both_results[1][0].structure


@pytest.mark.parametrize("relaxer_name", ["matsearch", "chgnet"])
def test_an_unsupported_element_fails_alone(
    relaxer_name: str, relaxed: Structure, ours: MLIPRelaxer, reference: CHGNetRelaxer
) -> None:
    relaxer = ours if relaxer_name == "matsearch" else reference
    californium_oxide = Structure(Lattice.cubic(3.5), ["Cf", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    results = relaxer.relax([californium_oxide, relaxed])
    assert results[0].structure is None and not results[0].converged
    assert "98" in results[0].error
    assert results[1].error is None and results[1].converged
    energies = relaxer.single_point([californium_oxide, relaxed])
    assert np.isnan(energies[0]) and np.isfinite(energies[1])


def test_mlip_relaxer_reports_overlapping_atoms(relaxed: Structure, ours: MLIPRelaxer) -> None:
    overlapping = relaxed.copy()
    overlapping.append(
        overlapping.species[0],
        overlapping.cart_coords[0] + [0.2, 0.0, 0.0],
        coords_are_cartesian=True,
    )
    results = ours.relax([overlapping, relaxed])
    assert results[0].error == ("two atoms are 0.20 Å apart at step 0, closer than the 0.5 Å minimum")
    assert results[1].converged


def _seconds_per_step(relaxer: Relaxer, structures: list[Structure]) -> float:
    """Wall seconds of a one-step relaxation of `structures` (energy, forces and stress)."""
    settings = relaxer.settings
    relaxer.settings = dataclasses.replace(settings, steps=1)
    started = time.perf_counter()
    relaxer.relax(structures)
    relaxer.settings = settings
    return time.perf_counter() - started


@pytest.mark.parametrize("relaxer_class", [MLIPRelaxer, CHGNetRelaxer])
def test_timeout_really_stops_the_relaxation(
    relaxer_class: type[MLIPRelaxer] | type[CHGNetRelaxer], rattled: list[Structure]
) -> None:
    relaxer = relaxer_class(
        device="cpu", settings=RelaxSettings(fmax=1e-6, steps=100_000, prerelax_model=None)
    )
    relaxer.single_point(rattled[:1])  # load the model outside the timed part
    timeout_s = max(1.0, 5 * _seconds_per_step(relaxer, rattled))
    relaxer.settings = dataclasses.replace(relaxer.settings, timeout_s=timeout_s)
    results = relaxer.relax(rattled)
    for result in results:  # fmax 1e-6 is never reached: only the timeout ends these relaxations
        assert result.error.startswith(f"relaxation exceeded {timeout_s:g} s wall-clock timeout")
        assert result.structure is None and 0 < result.steps < 100_000


def test_fixed_cell_relaxation_keeps_the_cell_and_agrees_with_chgnet(
    rattled: list[Structure], ours: MLIPRelaxer, reference: CHGNetRelaxer
) -> None:
    mine = ours.relax_fixed_cell(rattled, fmax=0.05, steps=200)
    ref = reference.relax_fixed_cell(rattled, fmax=0.05, steps=200)
    for start, a, b in zip(rattled, mine, ref, strict=True):
        assert a.error is None and b.error is None and a.converged and b.converged
        for relaxed in (a.structure, b.structure):  # ours may be on a reduced basis of the same lattice
            assert relaxed.volume == pytest.approx(start.volume, rel=1e-9)
            assert start.lattice.find_mapping(relaxed.lattice, ltol=1e-6, atol=1e-4) is not None
        assert a.energy_per_atom == pytest.approx(b.energy_per_atom, abs=1e-3)


def test_two_fidelity_relaxation_ends_where_the_accurate_model_alone_does(rattled: list[Structure]) -> None:
    """CHGNet relaxes first, SevenNet finishes: same minimum (energy within 5 meV/atom), SevenNet's
    raw-PBE energies throughout, the proposed structure's energy by SevenNet, steps of both added."""
    accurate = MLIPRelaxer("sevennet-0", device="cpu", settings=RelaxSettings(prerelax_model=None))
    two = MLIPRelaxer(
        "sevennet-0", device="cpu", settings=RelaxSettings(prerelax_model="chgnet-0.3.0", prerelax_fmax=0.1)
    )
    alone, combined = accurate.relax(rattled), two.relax(rattled)
    fast = MLIPRelaxer("chgnet-0.3.0", device="cpu", settings=RelaxSettings(fmax=0.1)).relax(rattled)
    initial = accurate.single_point(rattled)
    for a, b, f, e0 in zip(alone, combined, fast, initial, strict=True):
        assert a.error is None and b.error is None and b.converged
        assert b.energy_convention == "raw-pbe"
        assert b.energy_per_atom == pytest.approx(a.energy_per_atom, abs=5e-3)
        assert b.initial_energy_per_atom == pytest.approx(e0, abs=1e-6)
        assert b.steps > f.steps


def test_a_prerelax_model_is_refused_by_the_chgnet_backend() -> None:
    """(That the model exists is preflight's check: tests/test_preflight.py.)"""
    with pytest.raises(ValueError, match="'prerelax' is not used by backend 'chgnet'"):
        MLIPSpec(backend="chgnet", prerelax="sevennet-0")
