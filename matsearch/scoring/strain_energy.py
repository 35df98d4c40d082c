"""Strain energy: energy per atom of a strained, internally relaxed cell minus the unstrained one.

Both energies come from fixed-cell relaxations (positions only, ASE FIRE) with the same ASE
calculator, so the difference is the elastic (and any internal-relaxation) energy of the strain.
`relax_fixed_cell` is shared with the equation-of-state fit in `bulk_modulus`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.optimize import FIRE
from pymatgen.analysis.elasticity.strain import Strain
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor


@dataclass
class FixedCellEnergy:
    """Outcome of relaxing the positions in one fixed cell.

    `error` is one sentence when the calculator raised or returned a non-finite energy or
    positions; the energy is then NaN.
    """

    energy_per_atom: float  # eV/atom after relaxation (NaN on error)
    converged: bool  # max force below fmax within the allowed steps
    steps: int
    error: str | None = None


def relax_fixed_cell(atoms: Atoms, calculator: Calculator, *, fmax: float, steps: int) -> FixedCellEnergy:
    """Relax the positions of `atoms` (a copy) in its cell with ASE FIRE; fmax in eV/Å.

    Never raises for a calculator failure: it is returned as `error`.
    """
    atoms = atoms.copy()
    atoms.calc = calculator
    try:
        optimizer = FIRE(atoms, logfile=None)
        converged = bool(optimizer.run(fmax=fmax, steps=steps))
        energy = float(atoms.get_potential_energy()) / len(atoms)
    except Exception as exc:  # any calculator error is this structure's failure, not the run's
        return FixedCellEnergy(math.nan, False, 0, f"the calculator raised {type(exc).__name__}: {exc}")
    n_steps = int(optimizer.nsteps)
    if not math.isfinite(energy) or not np.isfinite(atoms.positions).all():
        return FixedCellEnergy(math.nan, False, n_steps, "the calculator returned a non-finite energy")
    return FixedCellEnergy(energy, converged, n_steps)


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


def strain_energy(
    structure: Structure,
    calculator: Calculator,
    strain: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    *,
    fmax: float = 0.05,
    steps: int = 200,
) -> StrainEnergyResult:
    """Energy per atom (eV/atom) needed to impose `strain` on `structure` at fixed strained cell.

    The cell is deformed by F (see `deformation_matrix`; lattice vectors as rows become a F^T),
    positions are relaxed in both the strained and the unstrained cell (fmax in eV/Å, at most
    `steps` FIRE steps), and the relaxed energies per atom are subtracted. A calculator failure is
    returned as `error`, never raised; a malformed strain raises ValueError.
    """
    deformation = deformation_matrix(strain)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    strained = atoms.copy()
    strained.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
    reference = relax_fixed_cell(atoms, calculator, fmax=fmax, steps=steps)
    if reference.error is not None:
        return StrainEnergyResult(None, None, None, error=f"unstrained cell: {reference.error}")
    deformed = relax_fixed_cell(strained, calculator, fmax=fmax, steps=steps)
    if deformed.error is not None:
        return StrainEnergyResult(
            None, None, reference.energy_per_atom, error=f"strained cell: {deformed.error}"
        )
    return StrainEnergyResult(
        strain_energy_per_atom=deformed.energy_per_atom - reference.energy_per_atom,
        strained_energy_per_atom=deformed.energy_per_atom,
        unstrained_energy_per_atom=reference.energy_per_atom,
        converged=reference.converged and deformed.converged,
    )
