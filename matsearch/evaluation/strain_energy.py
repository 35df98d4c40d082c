"""Strain energy: energy per atom of a strained, internally relaxed cell minus the unstrained one.

Both energies come from fixed-cell relaxations (positions only) by the same relaxer, so the
difference is the elastic (and any internal-relaxation) energy of the strain. `strain_energies`
hands the unstrained and strained cells of every structure to the relaxer in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.elasticity.strain import Strain
from pymatgen.core import Lattice, Structure

from matsearch.evaluation.relaxer import FixedCellRelaxer
from matsearch.results import RelaxResult
from matsearch.spec import StrainEnergySpec


def deformation_matrix(
    strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
) -> np.ndarray:
    """The symmetric deformation gradient F (3x3) that produces a Green–Lagrange strain.

    `strain` is a symmetric 3x3 Green–Lagrange tensor E = (FᵀF − I)/2 (dimensionless) or its
    Voigt form (E_xx, E_yy, E_zz, γ_yz, γ_xz, γ_xy) with engineering shears γ = 2E_ij.
    """
    array = np.asarray(strain, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError(f"strain components must be finite numbers, got {array.tolist()}")
    if array.shape == (6,):
        tensor = Strain.from_voigt(array)
    elif array.shape == (3, 3):
        if not np.allclose(array, array.T, atol=1e-12):
            raise ValueError(f"a 3x3 strain must be symmetric, got {array.tolist()}")
        tensor = Strain(array)
    else:
        raise ValueError(f"strain must be a 3x3 tensor or 6 Voigt components, got shape {array.shape}")
    return np.asarray(tensor.get_deformation_matrix(shape="symmetric"), dtype=float)


@dataclass
class StrainEnergyResult:
    """Strain energy of one structure; `error` is one sentence when it could not be computed."""

    strain_energy_per_atom: float | None  # eV/atom, E(strained) − E(unstrained), both relaxed
    strained_energy_per_atom: float | None  # eV/atom
    unstrained_energy_per_atom: float | None  # eV/atom
    converged: bool = False  # both internal relaxations converged
    error: str | None = None


def strain_energies(
    structures: Sequence[Structure], relaxer: FixedCellRelaxer, settings: StrainEnergySpec
) -> list[StrainEnergyResult]:
    """Energy per atom (eV/atom) needed to impose `settings.strain` on each structure.

    The cell is deformed by F (see `deformation_matrix`; lattice vectors as rows become a F^T),
    positions are relaxed in both the strained and the unstrained cell (`settings.fmax` eV/Å, at
    most `settings.steps` steps), and the relaxed energies per atom are subtracted. A failed
    relaxation is returned as `error`, never raised; a malformed strain raises ValueError.
    """
    deformation = deformation_matrix(settings.strain)
    cells = []
    for structure in structures:
        strained = structure.copy()
        strained.lattice = Lattice(structure.lattice.matrix @ deformation.T)
        cells += [structure, strained]
    relaxed = relaxer.relax_fixed_cell(cells, fmax=settings.fmax, steps=settings.steps)
    return [_difference(relaxed[2 * i], relaxed[2 * i + 1]) for i in range(len(structures))]


def _difference(reference: RelaxResult, deformed: RelaxResult) -> StrainEnergyResult:
    if reference.error is not None or reference.energy_per_atom is None:
        return StrainEnergyResult(None, None, None, error=f"unstrained cell: {reference.error}")
    if deformed.error is not None or deformed.energy_per_atom is None:
        return StrainEnergyResult(
            None, None, reference.energy_per_atom, error=f"strained cell: {deformed.error}"
        )
    return StrainEnergyResult(
        strain_energy_per_atom=deformed.energy_per_atom - reference.energy_per_atom,
        strained_energy_per_atom=deformed.energy_per_atom,
        unstrained_energy_per_atom=reference.energy_per_atom,
        converged=reference.converged and deformed.converged,
    )
