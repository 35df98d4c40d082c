"""Energy–volume curvature targets: isotropically strained copies with Birch–Murnaghan energies.

A DFT bulk modulus B0 (GPa) of a relaxed structure (volume V0, Å³) defines, with B0' = 4, the
third-order Birch–Murnaghan energy E(V) − E(V0) of the cell at other volumes. Copies of the
structure scaled isotropically to V = V0 (1 + s) carry these energy *differences* as labels: a
model trained on them gets the DFT curvature of the energy surface (the fix for the systematic
softening of universal potentials). Positions are scaled with the cell (not relaxed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from matsearch.mlip.units import EV_PER_A3_IN_GPA

DEFAULT_VOLUME_STRAINS = (-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06)


def birch_murnaghan_energy(volume: np.ndarray, v0: float, b0_gpa: float, b0_prime: float = 4.0) -> np.ndarray:
    """E(V) − E(V0) in eV per cell (third-order Birch–Murnaghan); volumes in Å³, B0 in GPa."""
    b0 = b0_gpa / EV_PER_A3_IN_GPA  # eV/Å³
    eta = (v0 / np.asarray(volume, dtype=float)) ** (2.0 / 3.0) - 1.0
    return 9.0 * v0 * b0 / 16.0 * (eta**3 * b0_prime + eta**2 * (6.0 - 4.0 * (eta + 1.0)))


def birch_murnaghan_pressure_gpa(volume: float, v0: float, b0_gpa: float, b0_prime: float = 4.0) -> float:
    """P(V) = −dE/dV in GPa of the same third-order Birch–Murnaghan form (volumes in Å³)."""
    ratio = (v0 / volume) ** (2.0 / 3.0)
    return float(1.5 * b0_gpa * (ratio**3.5 - ratio**2.5) * (1.0 + 0.75 * (b0_prime - 4.0) * (ratio - 1.0)))


@dataclass
class StrainedCopy:
    """One isotropically strained copy: structure, volume strain (V/V0 − 1), E − E(V0) in eV/cell."""

    structure: Structure
    volume_strain: float
    relative_energy: float


def strained_copies(
    structure: Structure,
    b0_gpa: float,
    volume_strains: Sequence[float] = DEFAULT_VOLUME_STRAINS,
    b0_prime: float = 4.0,
) -> list[StrainedCopy]:
    """Copies of ``structure`` at V0 (1 + s) for each s, labelled with BM energies (eV per cell)."""
    if not b0_gpa > 0:
        raise ValueError(f"b0_gpa must be positive, got {b0_gpa}")
    v0 = structure.volume
    copies = []
    for s in volume_strains:
        if not -0.5 < s < 0.5:
            raise ValueError(f"volume strain {s} is outside (-0.5, 0.5)")
        scaled = structure.copy()
        scaled.scale_lattice(v0 * (1.0 + s))
        energy = float(birch_murnaghan_energy(np.array([v0 * (1.0 + s)]), v0, b0_gpa, b0_prime)[0])
        copies.append(StrainedCopy(scaled, float(s), energy))
    return copies


def bulk_modulus_from_energies(volumes: np.ndarray, energies: np.ndarray, v0: float) -> float:
    """B = V0 d²E/dV² at V0 in GPa, from a cubic fit of E (eV/cell) over V (Å³)."""
    x = np.asarray(volumes, dtype=float) / v0 - 1.0
    coefficients = np.polyfit(x, np.asarray(energies, dtype=float), 3)
    curvature = 2.0 * coefficients[1]  # d²E/dx² at x = 0, eV
    return float(curvature / v0 * EV_PER_A3_IN_GPA)
