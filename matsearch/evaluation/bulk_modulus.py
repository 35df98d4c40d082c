"""Bulk modulus from an equation-of-state fit over fixed-cell relaxations at scaled volumes.

Each cell is scaled isotropically to volumes V·(1 − strain) … V·(1 + strain), the positions are
relaxed in each fixed cell, and E(V) is fitted with pymatgen's EOS (Birch–Murnaghan by default).
The volumes are relaxed in rounds from the input volume outwards, one volume on each side per
round; each volume starts from the relaxed positions of the two volumes before it on its side,
extrapolated linearly in the volume, so the atoms start close to where they end (about half the
optimiser steps of starting every volume from the scaled input; benchmarks/RESULTS.md). Every
round hands the volumes of all structures to the relaxer in one call, so a batched relaxer scans
all candidates together. The inputs should be relaxed (cell and positions) with the same
potential: the fit checks that its minimum lies inside the sampled volumes. A structure whose
modulus cannot be computed gets a result with `error` set to one sentence; nothing here raises
for a bad structure.
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
    factors = np.linspace(1.0 - strain, 1.0 + strain, n_points)
    factors[np.abs(factors - 1.0) < 1e-12] = 1.0  # the input volume exactly, when sampled
    return factors


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
    """Bulk moduli (GPa) of many relaxed structures, each round of volumes relaxed in one call.

    A structure whose relaxation fails at one volume is not scanned further; its result names
    that volume.
    """
    factors = volume_factors(settings.strain, settings.n_points)
    scans = [_Scan(structure, factors) for structure in structures]
    for points in _rounds(factors):
        jobs = [(scan, k) for scan in scans if scan.alive for k in points]
        if not jobs:
            break
        inputs = [scan.start(k) for scan, k in jobs]
        relaxed = relaxer.relax_fixed_cell(inputs, fmax=settings.fmax, steps=settings.steps)
        for (scan, k), result in zip(jobs, relaxed, strict=True):
            scan.record(k, result)
    return [_fit_scan(scan, settings.eos) for scan in scans]


def _rounds(factors: np.ndarray) -> list[list[int]]:
    """Indices of `factors` by round: the nearest volume below and above 1 (and 1 itself, when
    sampled) first, then outwards one volume per side per round."""
    below = [k for k in np.argsort(-factors) if factors[k] < 1]
    above = [k for k in np.argsort(factors) if factors[k] > 1]
    centre = [k for k in range(len(factors)) if factors[k] == 1]
    rounds = [[int(k) for k in pair] for pair in zip(below, above, strict=True)]
    rounds[0] += centre
    return rounds


class _Scan:
    """One structure's volume scan: the relaxation results so far and the starting positions of
    the next volumes (fractional coordinates, extrapolated from the relaxed ones on each side)."""

    def __init__(self, structure: Structure, factors: np.ndarray) -> None:
        self.structure = structure
        self.factors = factors
        self.results: list[RelaxResult | None] = [None] * len(factors)
        origin = (1.0, structure.frac_coords)
        self.anchors: dict[int, list[tuple[float, np.ndarray]]] = {-1: [origin], 1: [origin]}

    @property
    def alive(self) -> bool:
        return all(r is None or r.error is None for r in self.results)

    def _cell(self, k: int) -> Structure:
        scaled = self.structure.copy()
        scaled.scale_lattice(self.structure.volume * self.factors[k])
        return scaled

    def start(self, k: int) -> Structure:
        """The cell at volume `k` with the atoms at their extrapolated positions."""
        factor = self.factors[k]
        side = self.anchors[1 if factor >= 1 else -1]
        f_b, frac = side[-1]
        if len(side) > 1:
            f_a, x_a = side[-2]
            frac = frac + (frac - x_a) * (factor - f_b) / (f_b - f_a)
        cell = self._cell(k)
        species = [site.species for site in cell]  # compositions: disordered sites stay disordered
        return Structure(cell.lattice, species, frac, site_properties=cell.site_properties)

    def record(self, k: int, result: RelaxResult) -> None:
        """Keep the result at volume `k`; its relaxed positions become that side's newest anchor
        (at the input volume itself, the first anchor of both sides)."""
        self.results[k] = result
        if result.structure is None:
            return
        factor = self.factors[k]
        side = self.anchors[1 if factor >= 1 else -1]
        previous = side[0][1] if factor == 1 else side[-1][1]
        # The relaxer may return another basis of the same cell: go through Cartesian coordinates
        # and take, for each atom, the periodic image nearest its previous position.
        frac = self._cell(k).lattice.get_fractional_coords(result.structure.cart_coords)
        frac = previous + (frac - previous) - np.round(frac - previous)
        if factor == 1:
            for anchors in self.anchors.values():
                anchors[0] = (1.0, frac)
        else:
            side.append((factor, frac))


def _fit_scan(scan: _Scan, eos: str) -> BulkModulusResult:
    """The EOS fit of one structure's scan, or its failed volume as the error."""
    for factor, point in zip(scan.factors, scan.results, strict=True):
        if point is not None and point.error is not None:
            return BulkModulusResult(None, None, None, error=f"at volume ×{factor:.3f}: {point.error}")
    structure = scan.structure
    volumes = [structure.volume * f / len(structure) for f in scan.factors]
    energies = [
        math.nan if p is None or p.energy_per_atom is None else p.energy_per_atom for p in scan.results
    ]
    result = fit_bulk_modulus(volumes, energies, eos=eos)
    result.n_unconverged = sum(p is not None and not p.converged for p in scan.results)
    return result
