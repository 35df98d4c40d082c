"""Fixed-cell relaxation with any ASE calculator (ASE's LBFGS, one structure at a time).

The property scans of backends without a batched relaxer (the `chgnet` package, or EMT in tests)
go through here.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ase.calculators.calculator import Calculator
from ase.optimize import LBFGS
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.relax_defaults import LBFGS_ALPHA_EV_PER_A2, LBFGS_MAX_STEP_A, LBFGS_MEMORY
from matsearch.results import RelaxResult


def relax_fixed_cell_ase(
    structures: list[Structure], calculator: Calculator, *, fmax: float, steps: int
) -> list[RelaxResult]:
    """Relax the positions of each structure in its cell with ASE's LBFGS (fmax in eV/Å), with
    the settings of our batched L-BFGS (``relax_defaults``).

    Never raises for a calculator failure: it is the structure's `error`.
    """
    return [_relax_one(structure, calculator, fmax, steps) for structure in structures]


def _relax_one(structure: Structure, calculator: Calculator, fmax: float, steps: int) -> RelaxResult:
    started = time.perf_counter()
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    try:
        optimizer = LBFGS(
            atoms, logfile=None, alpha=LBFGS_ALPHA_EV_PER_A2, maxstep=LBFGS_MAX_STEP_A, memory=LBFGS_MEMORY
        )
        converged = bool(optimizer.run(fmax=fmax, steps=steps))
        energy = float(atoms.get_potential_energy()) / len(atoms)
    except Exception as exc:  # noqa: BLE001 - any calculator error is this structure's failure
        error = f"the calculator raised {type(exc).__name__}: {exc}"
        return RelaxResult(None, None, None, wall_time_s=time.perf_counter() - started, error=error)
    n_steps = int(optimizer.nsteps)
    if not math.isfinite(energy) or not np.isfinite(atoms.positions).all():
        error = "the calculator returned a non-finite energy"
        return RelaxResult(
            None, None, None, steps=n_steps, wall_time_s=time.perf_counter() - started, error=error
        )
    return RelaxResult(
        structure=AseAtomsAdaptor.get_structure(atoms),
        energy_per_atom=energy,
        initial_energy_per_atom=None,
        converged=converged,
        steps=n_steps,
        wall_time_s=time.perf_counter() - started,
    )
