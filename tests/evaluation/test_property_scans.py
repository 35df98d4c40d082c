"""Property scans: bulk modulus (EOS fit over fixed-cell relaxations) and strain energy.

Checked with ASE's EMT, which is cheap and exact enough that the reference bulk modulus can be
computed independently: B = V d²E/dV² at the minimum, from a fine E(V) scan (±0.5 %, 21 points)
fitted by a quartic. The in-house batched relaxer must give the ASE path's numbers, and scanning
many candidates together the numbers of scanning each alone.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from ase.units import GPa
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.evaluation.ase_fixed_cell import relax_fixed_cell_ase
from matsearch.evaluation.bulk_modulus import (
    EOS_NAMES,
    BulkModulusResult,
    bulk_moduli,
    fit_bulk_modulus,
    volume_factors,
)
from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
from matsearch.evaluation.strain_energy import StrainEnergyResult, deformation_matrix, strain_energies
from matsearch.results import RelaxResult
from matsearch.spec import BulkModulusSpec, StrainEnergySpec


class AseFixedCell:
    """A FixedCellRelaxer around any ASE calculator."""

    def __init__(self, calculator: Calculator) -> None:
        self.calculator = calculator

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        return relax_fixed_cell_ase(structures, self.calculator, fmax=fmax, steps=steps)


def bulk_modulus(structure: Structure, calculator: Calculator, **settings) -> BulkModulusResult:
    """One structure's scan with an ASE calculator; `settings` are BulkModulusSpec fields."""
    (result,) = bulk_moduli([structure], AseFixedCell(calculator), BulkModulusSpec(**settings))
    return result


def strain_energy(structure: Structure, calculator: Calculator, strain, **settings) -> StrainEnergyResult:
    """One structure's strain energy with an ASE calculator."""
    (result,) = strain_energies(
        [structure], AseFixedCell(calculator), StrainEnergySpec.model_construct(strain=strain, **settings)
    )
    return result


def _relaxed_emt(element: str, a: float) -> Structure:
    atoms = bulk(element, "fcc", a=a)
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-6, steps=200)
    return AseAtomsAdaptor.get_structure(atoms)


def _curvature_modulus_gpa(structure: Structure) -> float:
    """V d²E/dV² (GPa) at the input volume from a fine isotropic scan; no EOS form assumed."""
    atoms = AseAtomsAdaptor.get_atoms(structure)
    v0 = atoms.get_volume()
    factors = np.linspace(0.995, 1.005, 21)
    energies = []
    for f in factors:
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * f ** (1 / 3), scale_atoms=True)
        scaled.calc = EMT()
        energies.append(scaled.get_potential_energy())
    poly = np.polyfit(v0 * factors, energies, 4)
    return float(v0 * np.polyval(np.polyder(poly, 2), v0) / GPa)


@pytest.fixture(scope="module")
def copper() -> Structure:
    return _relaxed_emt("Cu", 3.6)


@pytest.fixture(scope="module")
def aluminium() -> Structure:
    return _relaxed_emt("Al", 4.05)


def test_emt_copper_matches_curvature_of_fine_scan(copper: Structure) -> None:
    reference = _curvature_modulus_gpa(copper)
    assert reference == pytest.approx(134.5, abs=0.5)  # EMT Cu (ASE), independent of our code
    result = bulk_modulus(copper, EMT())
    assert result.error is None
    assert result.b0_gpa == pytest.approx(reference, rel=2e-3)
    assert result.v0_per_atom == pytest.approx(copper.volume, rel=1e-4)
    assert result.e0_per_atom == pytest.approx(min(result.energies), abs=1e-4)
    assert len(result.volumes) == 7
    assert result.volumes[0] == pytest.approx(0.94 * copper.volume, rel=1e-9)
    assert result.volumes[-1] == pytest.approx(1.06 * copper.volume, rel=1e-9)


@pytest.mark.parametrize("eos", ["birch_murnaghan", "vinet", "murnaghan"])
def test_emt_aluminium_small_scan_any_eos(aluminium: Structure, eos: str) -> None:
    result = bulk_modulus(aluminium, EMT(), strain=0.02, n_points=9, eos=eos)
    assert result.error is None
    assert result.b0_gpa == pytest.approx(_curvature_modulus_gpa(aluminium), rel=5e-3)


def test_internal_positions_are_relaxed_in_each_cell(copper: Structure) -> None:
    """A supercell with displaced atoms must give the perfect crystal's modulus."""
    supercell = copper * (2, 2, 2)
    for i, shift in enumerate(([0.12, 0.0, 0.0], [0.0, -0.1, 0.05], [0.07, 0.07, -0.07])):
        supercell.translate_sites([i], shift, frac_coords=False)
    perfect = bulk_modulus(copper, EMT(), fmax=1e-4, steps=500)
    displaced = bulk_modulus(supercell, EMT(), fmax=1e-4, steps=500)
    assert displaced.error is None and displaced.n_unconverged == 0
    assert displaced.b0_gpa == pytest.approx(perfect.b0_gpa, rel=1e-3)
    assert displaced.e0_per_atom == pytest.approx(perfect.e0_per_atom, abs=1e-5)


class _NaNCalculator(Calculator):
    """An external potential that breaks: every energy and force is NaN."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results = {"energy": math.nan, "forces": np.full((n, 3), math.nan)}


class _RaisingCalculator(Calculator):
    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        raise RuntimeError("model weights missing")


class _Recording(AseFixedCell):
    """AseFixedCell that records, per call, each structure's volume relative to `reference` and
    the optimiser steps taken."""

    def __init__(self, calculator: Calculator, reference: Structure) -> None:
        super().__init__(calculator)
        self.reference = reference
        self.calls: list[list[tuple[float, int]]] = []

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        results = super().relax_fixed_cell(structures, fmax=fmax, steps=steps)
        self.calls.append(
            [
                (round(s.volume / self.reference.volume, 6), r.steps)
                for s, r in zip(structures, results, strict=True)
            ]
        )
        return results


@pytest.mark.parametrize(
    ("n_points", "rounds"),
    [
        (7, [[0.98, 1.02, 1.0], [0.96, 1.04], [0.94, 1.06]]),
        (6, [[0.984, 1.016], [0.952, 1.048], [0.92, 1.08]]),
    ],
)
def test_volumes_are_relaxed_in_rounds_from_the_input_volume_outwards(
    copper: Structure, n_points: int, rounds: list[list[float]]
) -> None:
    """Each round is one relaxer call holding the next volume on each side of every structure."""
    relaxer = _Recording(EMT(), copper)
    strain = 0.06 if n_points == 7 else 0.08
    results = bulk_moduli([copper, copper], relaxer, BulkModulusSpec(strain=strain, n_points=n_points))
    assert [r.error for r in results] == [None, None]
    assert [[volume for volume, _ in call] for call in relaxer.calls] == [r * 2 for r in rounds]


def test_outer_volumes_start_from_the_positions_extrapolated_from_inner_ones(copper: Structure) -> None:
    """A rattled supercell relaxes back to the perfect crystal in the first round; the outer
    volumes then start from those relaxed positions, so they need almost no steps."""
    rattled = copper * (2, 2, 2)
    rattled.perturb(0.1, min_distance=0.05)
    relaxer = _Recording(EMT(), rattled)
    (result,) = bulk_moduli([rattled], relaxer, BulkModulusSpec(fmax=1e-3, steps=500))
    assert result.error is None and result.n_unconverged == 0
    first, *outer = relaxer.calls
    first_steps = min(steps for _, steps in first)
    assert first_steps >= 5
    assert max(steps for call in outer for _, steps in call) < first_steps / 2
    assert result.b0_gpa == pytest.approx(bulk_modulus(copper, EMT(), fmax=1e-3).b0_gpa, rel=2e-3)


class _OtherBasis(AseFixedCell):
    """Returns each relaxed structure on another basis of its cell (b + a), with atom 0 moved by
    a lattice vector, as a relaxer that reduces cells may; records the structures it was given."""

    def __init__(self, calculator: Calculator) -> None:
        super().__init__(calculator)
        self.inputs: list[Structure] = []

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        self.inputs += structures
        results = super().relax_fixed_cell(structures, fmax=fmax, steps=steps)
        for result in results:
            a, b, c = result.structure.lattice.matrix
            cart = result.structure.cart_coords.copy()
            cart[0] += a
            result.structure = Structure(
                Lattice([a, b + a, c]), result.structure.species, cart, coords_are_cartesian=True
            )
        return results


def test_later_volumes_start_where_the_atoms_are_whatever_basis_the_relaxer_returns(
    copper: Structure,
) -> None:
    supercell = copper * (2, 1, 1)
    relaxer = _OtherBasis(EMT())
    (result,) = bulk_moduli([supercell], relaxer, BulkModulusSpec())
    assert result.error is None
    assert len(relaxer.inputs) == 7
    for start in relaxer.inputs:  # fractional coordinates in the input's own basis: no jumps
        assert np.abs(start.frac_coords - supercell.frac_coords).max() < 1e-6
    assert result.b0_gpa == pytest.approx(bulk_modulus(copper, EMT()).b0_gpa, rel=1e-3)


def test_a_failed_volume_ends_that_structures_scan(copper: Structure) -> None:
    relaxer = _Recording(_NaNCalculator(), copper)
    (result,) = bulk_moduli([copper], relaxer, BulkModulusSpec())
    assert result.error == "at volume ×0.980: the calculator returned a non-finite energy"
    assert len(relaxer.calls) == 1  # no volume further out was tried


def test_nan_calculator_is_recorded_not_raised(copper: Structure) -> None:
    result = bulk_modulus(copper, _NaNCalculator())
    assert result.b0_gpa is None and result.v0_per_atom is None
    assert result.error == "at volume ×0.980: the calculator returned a non-finite energy"


def test_raising_calculator_is_recorded_not_raised(copper: Structure) -> None:
    result = bulk_modulus(copper, _RaisingCalculator())
    assert result.b0_gpa is None
    assert result.error == "at volume ×0.980: the calculator raised RuntimeError: model weights missing"


@pytest.mark.parametrize(("factor", "side"), [(1.3, "smallest"), (0.7, "largest")])
def test_far_from_equilibrium_is_an_error(copper: Structure, factor: float, side: str) -> None:
    """Stretched input: lowest energy at the smallest volume; compressed: at the largest."""
    scaled = copper.copy()
    scaled.scale_lattice(copper.volume * factor)
    result = bulk_modulus(scaled, EMT())
    assert result.b0_gpa is None
    assert result.error.startswith(f"the lowest energy is at the {side} sampled volume")
    assert result.error.endswith("relax its cell first")


def _birch_murnaghan(volumes: np.ndarray, e0: float, v0: float, b0: float, b1: float) -> np.ndarray:
    """Third-order Birch–Murnaghan E(V); b0 in eV/Å³."""
    x = (v0 / volumes) ** (2 / 3) - 1
    return e0 + 9 * v0 * b0 / 16 * (x**3 * b1 + x**2 * (6 - 4 * (v0 / volumes) ** (2 / 3)))


def test_fit_recovers_birch_murnaghan_parameters() -> None:
    volumes = np.linspace(10.0, 12.0, 7)
    energies = _birch_murnaghan(volumes, -3.0, 11.2, 100 * GPa, 4.5)
    fit = fit_bulk_modulus(volumes, energies)
    assert fit.error is None
    assert fit.b0_gpa == pytest.approx(100.0, rel=1e-5)
    assert fit.v0_per_atom == pytest.approx(11.2, rel=1e-6)
    assert fit.e0_per_atom == pytest.approx(-3.0, abs=1e-8)
    assert fit.b1 == pytest.approx(4.5, rel=1e-4)


def test_fit_rejects_an_energy_maximum() -> None:
    volumes = np.linspace(10.0, 12.0, 7)
    inverted = -_birch_murnaghan(volumes, -3.0, 11.0, 100 * GPa, 4.5)
    result = fit_bulk_modulus(volumes, inverted)
    assert result.b0_gpa is None
    assert result.error.startswith("the lowest energy is at the")


def test_fit_nan_energy_is_an_error() -> None:
    result = fit_bulk_modulus([10.0, 10.5, 11.0, 11.5, 12.0], [-3.0, -3.1, math.nan, -3.1, -3.0])
    assert result.error == "an energy or volume of the scan is not finite"


def test_bad_arguments_raise() -> None:
    message = "unknown equation of state 'bm3'; allowed: " + ", ".join(EOS_NAMES)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_bulk_modulus([10.0, 10.5, 11.0, 11.5, 12.0], [-3.0, -3.1, -3.2, -3.1, -3.0], eos="bm3")
    with pytest.raises(ValueError, match="^strain must be a volume fraction between 0 and 0.5, got 0.7$"):
        volume_factors(0.7, 7)
    with pytest.raises(ValueError, match="^n_points must be at least 5 for a 4-parameter EOS fit, got 4$"):
        volume_factors(0.06, 4)


@pytest.fixture(scope="module")
def model64():
    import torch

    from matsearch.mlip import load_model

    return load_model("default", device="cpu", dtype=torch.float64)


def _rocksalt(a: float) -> Structure:
    cubic = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    return cubic.get_primitive_structure()


def test_batched_matches_ase_path_with_inhouse_model(model64) -> None:
    """The batched relaxer relaxes all volumes in one call; it must agree with the ASE path."""
    rocksalt = _rocksalt(5.64)
    (batched,) = bulk_moduli([rocksalt], MLIPRelaxer.from_model(model64), BulkModulusSpec(fmax=0.01))
    single = bulk_modulus(rocksalt, model64.as_ase_calculator(), fmax=0.01)
    assert batched.error is None and single.error is None
    assert batched.b0_gpa == pytest.approx(single.b0_gpa, rel=1e-4)
    strain = [0.01, -0.01, 0.0, 0.0, 0.0, 0.02]
    (batched_strain,) = strain_energies(
        [rocksalt], MLIPRelaxer.from_model(model64), StrainEnergySpec(strain=strain, fmax=0.01)
    )
    ase_strain = strain_energy(rocksalt, model64.as_ase_calculator(), strain, fmax=0.01, steps=200)
    assert batched_strain.strain_energy_per_atom > 0
    assert batched_strain.strain_energy_per_atom == pytest.approx(ase_strain.strain_energy_per_atom, rel=1e-3)


def test_candidates_scanned_together_get_the_numbers_they_get_alone(model64) -> None:
    """Batching across candidates changes the company of each relaxation, not its result (up to
    float64 summation order, which can move a relaxation's last step by a little)."""
    rattled = _rocksalt(5.67) * (1, 1, 2)
    rattled.translate_sites([0], [0.05, 0.0, 0.0], frac_coords=False)
    candidates = [_rocksalt(5.64), _rocksalt(5.70), rattled]
    relaxer, settings = MLIPRelaxer.from_model(model64), BulkModulusSpec(fmax=0.01)
    together = bulk_moduli(candidates, relaxer, settings)
    alone = [bulk_moduli([c], relaxer, settings)[0] for c in candidates]
    for one, other in zip(together, alone, strict=True):
        assert one.error is None and other.error is None
        assert one.b0_gpa == pytest.approx(other.b0_gpa, rel=2e-5)
        np.testing.assert_allclose(one.energies, other.energies, atol=1e-6)


# --- strain energy -------------------------------------------------------------------------------


def test_voigt_and_tensor_strain_give_the_same_deformation() -> None:
    voigt = deformation_matrix([0.01, 0.0, -0.02, 0.0, 0.0, 0.04])
    tensor = deformation_matrix([[0.01, 0.02, 0.0], [0.02, 0.0, 0.0], [0.0, 0.0, -0.02]])
    np.testing.assert_allclose(voigt, tensor, atol=1e-12)
    green_lagrange = 0.5 * (voigt.T @ voigt - np.eye(3))
    np.testing.assert_allclose(green_lagrange, [[0.01, 0.02, 0], [0.02, 0, 0], [0, 0, -0.02]], atol=1e-12)


def test_hydrostatic_strain_energy_matches_bulk_modulus(copper: Structure) -> None:
    """Small hydrostatic strain δ: ΔE/atom = (9/2) B V₀ δ² to first order."""
    delta = 0.002
    result = strain_energy(copper, EMT(), np.eye(3) * delta)
    assert result.error is None and result.converged
    b0_ev_per_a3 = _curvature_modulus_gpa(copper) * GPa
    expected = 4.5 * b0_ev_per_a3 * copper.volume * delta**2
    assert result.strain_energy_per_atom == pytest.approx(expected, rel=0.02)
    assert result.strain_energy_per_atom == pytest.approx(
        result.strained_energy_per_atom - result.unstrained_energy_per_atom, abs=1e-12
    )


def test_strain_energy_failure_and_bad_strain(copper: Structure) -> None:
    failed = strain_energy(copper, _NaNCalculator(), [0.01, 0, 0, 0, 0, 0])
    assert failed.strain_energy_per_atom is None
    assert failed.error == "unstrained cell: the calculator returned a non-finite energy"
    with pytest.raises(
        ValueError, match=r"strain must be a 3x3 tensor or 6 Voigt components, got shape \(4,\)"
    ):
        strain_energy(copper, EMT(), [0.01, 0, 0, 0])
    with pytest.raises(ValueError, match="a 3x3 strain must be symmetric"):
        strain_energy(copper, EMT(), [[0, 0.01, 0], [0, 0, 0], [0, 0, 0]])
