"""Bulk modulus from an equation-of-state fit over fixed-cell relaxations at scaled volumes.

The cell is scaled isotropically to volumes V·(1 − strain) … V·(1 + strain), the positions are
relaxed in each fixed cell, and E(V) is fitted with pymatgen's EOS (Birch–Murnaghan by default).
The input should be relaxed (cell and positions) with the same potential: the fit checks that its
minimum lies inside the sampled volumes. A structure whose modulus cannot be computed gets a
result with `error` set to one sentence; these functions never raise for a bad structure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from ase.calculators.calculator import Calculator
from pymatgen.analysis.eos import EOS
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.scoring.strain_energy import relax_fixed_cell

if TYPE_CHECKING:
    from matsearch.mlip.protocol import BatchedModel

EOS_NAMES = tuple(EOS.MODELS)


@dataclass
class BulkModulusResult:
    """Equation-of-state fit of one structure.

    `volumes` (Å³/atom) and `energies` (eV/atom) are the sampled points, in increasing volume.
    On failure the fitted values are None and `error` says why in one sentence.
    """

    b0_gpa: float | None  # bulk modulus at the fitted equilibrium volume, GPa
    v0_per_atom: float | None  # fitted equilibrium volume, Å³/atom
    e0_per_atom: float | None  # fitted minimum energy, eV/atom
    error: str | None = None
    volumes: list[float] = field(default_factory=list)  # Å³/atom
    energies: list[float] = field(default_factory=list)  # eV/atom
    b1: float | None = None  # pressure derivative of the bulk modulus (dimensionless)
    n_unconverged: int = 0  # fixed-cell relaxations that hit the step limit


def volume_factors(strain: float, n_points: int) -> np.ndarray:
    """Volume scale factors 1 − strain … 1 + strain, evenly spaced (strain is a volume fraction)."""
    if not 0 < strain < 0.5:
        raise ValueError(f"strain must be a volume fraction between 0 and 0.5, got {strain}")
    if n_points < 5:
        raise ValueError(f"n_points must be at least 5 for a 4-parameter EOS fit, got {n_points}")
    return np.linspace(1.0 - strain, 1.0 + strain, n_points)


def _check_eos(eos: str) -> None:
    if eos not in EOS_NAMES:
        raise ValueError(f"unknown equation of state '{eos}'; allowed: {', '.join(EOS_NAMES)}")


def bulk_modulus(
    structure: Structure,
    calculator: Calculator,
    *,
    strain: float = 0.06,
    n_points: int = 7,
    fmax: float = 0.05,
    steps: int = 200,
    eos: str = "birch_murnaghan",
) -> BulkModulusResult:
    """Bulk modulus (GPa) of `structure` with any ASE calculator.

    Args:
        structure: a structure relaxed with the same potential.
        calculator: an ASE calculator, e.g. ``load_model().as_ase_calculator()`` or chgnet's
            ``CHGNetCalculator``.
        strain: half-width of the volume scan as a fraction of the input volume.
        n_points: number of volumes sampled.
        fmax: force convergence of each fixed-cell relaxation, eV/Å.
        steps: at most this many FIRE steps per volume.
        eos: equation of state, one of EOS_NAMES.
    """
    _check_eos(eos)
    factors = volume_factors(strain, n_points)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    volumes, energies, n_unconverged = [], [], 0
    for factor in factors:
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * factor ** (1 / 3), scale_atoms=True)
        outcome = relax_fixed_cell(scaled, calculator, fmax=fmax, steps=steps)
        if outcome.error is not None:
            return BulkModulusResult(None, None, None, error=f"at volume ×{factor:.3f}: {outcome.error}")
        volumes.append(scaled.get_volume() / len(scaled))
        energies.append(outcome.energy_per_atom)
        n_unconverged += not outcome.converged
    result = fit_bulk_modulus(volumes, energies, eos=eos)
    result.n_unconverged = n_unconverged
    return result


def fit_bulk_modulus(
    volumes: Sequence[float], energies: Sequence[float], *, eos: str = "birch_murnaghan"
) -> BulkModulusResult:
    """Fit E(V) (Å³/atom, eV/atom) and check that the result is physical.

    Fails (with `error`) when an energy is not finite, the lowest sampled energy is at an end of
    the scan, the fit does not converge, the fitted minimum lies outside the sampled volumes, or
    the bulk modulus is not a positive number.
    """
    _check_eos(eos)
    order = np.argsort(volumes)
    v = np.asarray(volumes, dtype=float)[order]
    e = np.asarray(energies, dtype=float)[order]
    failed = BulkModulusResult(None, None, None, volumes=v.tolist(), energies=e.tolist())
    if not (np.isfinite(v).all() and np.isfinite(e).all()):
        failed.error = "an energy or volume of the scan is not finite"
        return failed
    lowest = int(np.argmin(e))
    if lowest in (0, len(e) - 1):
        side = "smallest" if lowest == 0 else "largest"
        failed.error = (
            f"the lowest energy is at the {side} sampled volume ({v[lowest]:.3f} Å³/atom), so the "
            "input is far from equilibrium; relax its cell first"
        )
        return failed
    try:
        fit = EOS(eos_name=eos).fit(v, e)
        b0, v0, e0, b1 = float(fit.b0_GPa), float(fit.v0), float(fit.e0), float(fit.b1)
    except Exception as exc:  # EOSError, scipy's RuntimeError, or a numerical error in the model
        failed.error = f"the {eos} fit failed ({type(exc).__name__}: {exc})"
        return failed
    if not all(math.isfinite(x) for x in (b0, v0, e0)):
        failed.error = f"the {eos} fit returned a non-finite bulk modulus or volume"
        return failed
    if not v[0] <= v0 <= v[-1]:
        failed.error = (
            f"the fitted equilibrium volume {v0:.3f} Å³/atom lies outside the sampled "
            f"{v[0]:.3f}–{v[-1]:.3f} Å³/atom, so the input is far from equilibrium; "
            "relax its cell first"
        )
        return failed
    if b0 <= 0:
        failed.error = f"the fitted bulk modulus {b0:.3g} GPa is not positive, so it is not physical"
        return failed
    return BulkModulusResult(b0, v0, e0, volumes=v.tolist(), energies=e.tolist(), b1=b1)


def bulk_modulus_batched(
    structures: Sequence[Structure],
    model: BatchedModel,
    *,
    strain: float = 0.06,
    n_points: int = 7,
    fmax: float = 0.05,
    steps: int = 200,
    eos: str = "birch_murnaghan",
    max_batch_atoms: int = 1024,
) -> list[BulkModulusResult]:
    """Bulk moduli (GPa) of many structures with one batched fixed-cell relaxation of all volumes.

    Same procedure and arguments as `bulk_modulus`, but every scaled cell of every structure is
    relaxed together by ``matsearch.mlip.relax.relax`` (positions only) with an in-house model.
    """
    from matsearch.mlip.relax import relax

    _check_eos(eos)
    factors = volume_factors(strain, n_points)
    scaled = []
    for structure in structures:
        for factor in factors:
            copy = structure.copy()
            copy.scale_lattice(structure.volume * factor)
            scaled.append(copy)
    relaxed = relax(scaled, model, fmax=fmax, steps=steps, max_batch_atoms=max_batch_atoms, cell_filter=False)
    results = []
    for i, structure in enumerate(structures):
        chunk = relaxed[i * n_points : (i + 1) * n_points]
        failure = next(((f, r.error) for f, r in zip(factors, chunk, strict=True) if r.error), None)
        if failure is not None:
            results.append(
                BulkModulusResult(None, None, None, error=f"at volume ×{failure[0]:.3f}: {failure[1]}")
            )
            continue
        volumes = [structure.volume * f / len(structure) for f in factors]
        energies = [math.nan if r.energy_per_atom is None else r.energy_per_atom for r in chunk]
        result = fit_bulk_modulus(volumes, energies, eos=eos)
        result.n_unconverged = sum(not r.converged for r in chunk)
        results.append(result)
    return results
