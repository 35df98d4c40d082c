"""The one model contract: what the relaxer, the ASE calculator and the conformance checks need."""

from __future__ import annotations

from typing import Protocol

import torch

from matsearch.mlip.state import BatchedState

EV_PER_A3_IN_GPA = 160.21766208  # 1 eV/Å³ in GPa: models compute stress in eV/Å³, results give GPa


class BatchedModel(Protocol):
    """A batched potential with ``MLIPModel.compute``'s contract (see its docstring for units)."""

    device: torch.device
    dtype: torch.dtype

    def compute(
        self, state: BatchedState, *, forces: bool = True, stress: bool = True
    ) -> dict[str, torch.Tensor]:
        """``energy`` [B] eV; ``forces`` [N, 3] eV/Å and ``stress_ev_per_a3`` [B, 3, 3] eV/Å³ when
        asked; optionally ``magmoms`` [N] μB."""
        ...
