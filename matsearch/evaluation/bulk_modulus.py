"""Bulk modulus from an equation-of-state fit over fixed-cell relaxations at scaled volumes.

Each cell is scaled isotropically to volumes V·(1 − strain) … V·(1 + strain), the positions are
relaxed in each fixed cell, and E(V) is fitted with pymatgen's EOS (Birch–Murnaghan by default).
`bulk_moduli` hands every scaled cell of every structure to the relaxer in one call, so a batched
relaxer scans all candidates together. The inputs should be relaxed (cell and positions) with the
same potential: the fit checks that its minimum lies inside the sampled volumes. A structure whose
modulus cannot be computed gets a result with `error` set to one sentence; nothing here raises for
a bad structure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.analysis.eos import EOS
from pymatgen.core import Structure

from matsearch.evaluation.relaxer import FixedCellRelaxer
from matsearch.results import RelaxResult
from matsearch.spec import BulkModulusSpec

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


def bulk_moduli(
    structures: Sequence[Structure], relaxer: FixedCellRelaxer, settings: BulkModulusSpec
) -> list[BulkModulusResult]:
    """Bulk moduli (GPa) of many relaxed structures, every scaled cell relaxed in one relaxer call."""
    factors = volume_factors(settings.strain, settings.n_points)
    scaled = []
    for structure in structures:
        for factor in factors:
            copy = structure.copy()
            copy.scale_lattice(structure.volume * factor)
            scaled.append(copy)
    relaxed = relaxer.relax_fixed_cell(scaled, fmax=settings.fmax, steps=settings.steps)
    n_points = len(factors)
    return [
        _fit_scan(structure, factors, relaxed[i * n_points : (i + 1) * n_points], settings.eos)
        for i, structure in enumerate(structures)
    ]


def _fit_scan(
    structure: Structure, factors: np.ndarray, scan: list[RelaxResult], eos: str
) -> BulkModulusResult:
    """The EOS fit of one structure's scan, or the first failed volume as the error."""
    for factor, point in zip(factors, scan, strict=True):
        if point.error is not None:
            return BulkModulusResult(None, None, None, error=f"at volume ×{factor:.3f}: {point.error}")
    volumes = [structure.volume * f / len(structure) for f in factors]
    energies = [math.nan if p.energy_per_atom is None else p.energy_per_atom for p in scan]
    result = fit_bulk_modulus(volumes, energies, eos=eos)
    result.n_unconverged = sum(not p.converged for p in scan)
    return result
