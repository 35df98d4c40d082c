"""Batched atomic state: many periodic structures concatenated into flat tensors.

Conventions (the same as ASE and pymatgen):

- ``positions`` [N, 3] Cartesian coordinates in Å of all atoms of all systems, system after system.
- ``cell`` [B, 3, 3] lattice vectors in Å as ROWS: ``cell[b, i]`` is lattice vector i of system b,
  so Cartesian = fractional @ cell[b].
- ``atomic_numbers`` [N] int64.
- ``batch`` [N] int64 system index of each atom, non-decreasing, every system has at least one atom.
- ``pbc`` [B, 3] bool periodicity per lattice direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Lattice, Structure


@dataclass
class BatchedState:
    """Flat tensors describing B structures with N atoms in total (see module docstring)."""

    positions: torch.Tensor
    cell: torch.Tensor
    atomic_numbers: torch.Tensor
    batch: torch.Tensor
    pbc: torch.Tensor

    def __post_init__(self) -> None:
        n_atoms = self.positions.shape[0]
        n_systems = self.cell.shape[0]
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise ValueError(f"positions must have shape [N, 3], got {tuple(self.positions.shape)}")
        if self.cell.ndim != 3 or self.cell.shape[1:] != (3, 3):
            raise ValueError(f"cell must have shape [B, 3, 3], got {tuple(self.cell.shape)}")
        if self.atomic_numbers.shape != (n_atoms,) or self.batch.shape != (n_atoms,):
            raise ValueError(
                f"atomic_numbers and batch must have shape [{n_atoms}], got "
                f"{tuple(self.atomic_numbers.shape)} and {tuple(self.batch.shape)}"
            )
        if self.pbc.shape != (n_systems, 3):
            raise ValueError(f"pbc must have shape [{n_systems}, 3], got {tuple(self.pbc.shape)}")
        devices = {t.device for t in (self.positions, self.cell, self.atomic_numbers, self.batch)}
        if len(devices) != 1:
            raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
        if self.positions.dtype != self.cell.dtype:
            raise ValueError(
                f"positions ({self.positions.dtype}) and cell ({self.cell.dtype}) must share a dtype"
            )

    @property
    def n_systems(self) -> int:
        """Number of structures B."""
        return self.cell.shape[0]

    @property
    def n_atoms(self) -> int:
        """Total number of atoms N."""
        return self.positions.shape[0]

    @property
    def device(self) -> torch.device:
        """Device holding the tensors."""
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating point dtype of positions and cell."""
        return self.positions.dtype

    @property
    def n_atoms_per_system(self) -> torch.Tensor:
        """[B] int64 number of atoms in each system."""
        return torch.bincount(self.batch, minlength=self.n_systems)

    def clone(self) -> BatchedState:
        """Deep copy (new tensors, detached from any graph)."""
        return BatchedState(
            positions=self.positions.detach().clone(),
            cell=self.cell.detach().clone(),
            atomic_numbers=self.atomic_numbers.clone(),
            batch=self.batch.clone(),
            pbc=self.pbc.clone(),
        )

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> BatchedState:
        """Copy to another device and/or floating dtype (integer tensors keep int64)."""
        return BatchedState(
            positions=self.positions.to(device=device, dtype=dtype),
            cell=self.cell.to(device=device, dtype=dtype),
            atomic_numbers=self.atomic_numbers.to(device=device),
            batch=self.batch.to(device=device),
            pbc=self.pbc.to(device=device),
        )

    @classmethod
    def from_structures(
        cls,
        structures: list[Structure],
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> BatchedState:
        """Concatenate pymatgen structures (Cartesian coords in Å, lattice rows in Å)."""
        if not structures:
            raise ValueError("from_structures needs at least one structure, got an empty list")
        positions = np.concatenate([s.cart_coords for s in structures], axis=0)
        cell = np.stack([s.lattice.matrix for s in structures], axis=0)
        numbers = np.concatenate([np.asarray(s.atomic_numbers, dtype=np.int64) for s in structures])
        counts = np.array([len(s) for s in structures], dtype=np.int64)
        if (counts == 0).any():
            raise ValueError(f"structure {int(np.argmin(counts))} has no atoms")
        batch = np.repeat(np.arange(len(structures), dtype=np.int64), counts)
        pbc = np.stack([np.asarray(s.lattice.pbc, dtype=bool) for s in structures], axis=0)
        return cls(
            positions=torch.as_tensor(positions, dtype=dtype, device=device),
            cell=torch.as_tensor(cell, dtype=dtype, device=device),
            atomic_numbers=torch.as_tensor(numbers, device=device),
            batch=torch.as_tensor(batch, device=device),
            pbc=torch.as_tensor(pbc, device=device),
        )

    def to_structures(self) -> list[Structure]:
        """Split back into pymatgen structures (Cartesian coordinates, lattice rows in Å)."""
        positions = self.positions.detach().cpu().double().numpy()
        cell = self.cell.detach().cpu().double().numpy()
        numbers = self.atomic_numbers.detach().cpu().numpy()
        pbc = self.pbc.detach().cpu().numpy()
        counts = self.n_atoms_per_system.cpu().numpy()
        offsets = np.concatenate([[0], np.cumsum(counts)])
        structures = []
        for b in range(self.n_systems):
            sl = slice(offsets[b], offsets[b + 1])
            lattice = Lattice(cell[b], pbc=tuple(bool(p) for p in pbc[b]))
            structures.append(
                Structure(lattice, numbers[sl].tolist(), positions[sl], coords_are_cartesian=True)
            )
        return structures
