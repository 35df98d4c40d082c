"""The one model contract: what the relaxer, the ASE calculator and the conformance checks need."""

from __future__ import annotations

from typing import Protocol

import torch

from matsearch.mlip.state import BatchedState


class BatchedModel(Protocol):
    """A batched potential with ``MLIPModel.compute``'s contract (see its docstring for units)."""

    device: torch.device
    dtype: torch.dtype
    energy_convention: str  # "mp2020" (MP2020-corrected energies) or "raw-pbe" (uncorrected PBE/PBE+U)

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff in Å (structures too dense for it are refused before evaluation)."""
        ...

    def estimated_bytes(self, n_atoms: int, volume: float) -> float:
        """Peak memory (bytes) of energy, forces and stress of one structure of `volume` Å³ (> 0)."""
        ...

    def compute(
        self, state: BatchedState, *, forces: bool = True, stress: bool = True
    ) -> dict[str, torch.Tensor]:
        """``energy`` [B] eV; ``forces`` [N, 3] eV/Å and ``stress_ev_per_a3`` [B, 3, 3] eV/Å³ when
        asked; optionally ``magmoms`` [N] μB."""
        ...
