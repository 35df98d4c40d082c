"""ASE calculator adapter for a batched model (``mlip.protocol.BatchedModel``, e.g. ``MLIPModel``).

Units at the boundary: energy eV per cell, forces eV/Å, stress eV/Å³ in ASE's Voigt order
(xx, yy, zz, yz, xz, xy) and sign (the model's own sign, see ``MLIPModel.compute``), magnetic
moments μB, charges e.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from matsearch.mlip.protocol import BatchedModel
from matsearch.mlip.state import BatchedState


def state_from_atoms(atoms: Atoms, device: torch.device, dtype: torch.dtype) -> BatchedState:
    """A one-system BatchedState from ASE atoms (cell rows in Å)."""
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError(f"the MLIP needs atoms with a 3D cell; got a cell of zero volume {cell.tolist()}")
    n_atoms = len(atoms)
    return BatchedState(
        positions=torch.as_tensor(atoms.positions, dtype=dtype, device=device),
        cell=torch.as_tensor(cell[None], dtype=dtype, device=device),
        atomic_numbers=torch.as_tensor(atoms.numbers, dtype=torch.long, device=device),
        batch=torch.zeros(n_atoms, dtype=torch.long, device=device),
        pbc=torch.as_tensor(np.asarray(atoms.pbc, dtype=bool)[None], device=device),
    )


class MLIPCalculator(Calculator):
    """ASE calculator: energy, free_energy (= energy), forces, stress, charges, and magmoms where
    the model predicts them (``get_magnetic_moments`` raises ASE's PropertyNotImplementedError
    otherwise)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "magmoms", "charges"]

    def __init__(self, model: BatchedModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        state = state_from_atoms(self.atoms, self.model.device, self.model.dtype)
        out = self.model.compute(state)
        energy = float(out["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].cpu().double().numpy(),
            "stress": full_3x3_to_voigt_6_stress(out["stress_ev_per_a3"][0].cpu().double().numpy()),
            "charges": out["charges"].cpu().double().numpy(),
        }
        if "magmoms" in out:
            self.results["magmoms"] = out["magmoms"].cpu().double().numpy()
