"""Batching under two budgets: which waiting structures join the running batch when others leave.

The atom budget bounds the work of one model call; the memory budget bounds its peak memory,
estimated by the model from each structure's size and volume (`estimated_bytes`), so that a batch
of dense structures stays under the limit although it has few atoms.
"""

from __future__ import annotations

import math
from collections import deque

import torch

FREE_MEMORY_FRACTION = 0.8  # share of a GPU's free memory one batched model call may plan to use


def memory_budget_bytes(requested_gb: float, device: torch.device) -> float:
    """The batch memory budget in bytes: `requested_gb`, and on a CUDA device at most
    FREE_MEMORY_FRACTION of the memory free on it now (other processes may share the GPU)."""
    budget = requested_gb * 1e9
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        budget = min(budget, FREE_MEMORY_FRACTION * free_bytes)
    return budget


class AtomBudgetQueue:
    """First-in-first-out queue of structure indices, admitted while the atom budget and, with
    `memory_bytes`, the memory budget `max_batch_bytes` allow.

    A structure larger than the atom budget is admitted alone, so nothing waits forever; callers
    reject structures whose memory alone exceeds `max_batch_bytes` before putting them here.
    """

    def __init__(
        self,
        n_atoms: list[int],
        max_batch_atoms: int,
        memory_bytes: list[float] | None = None,
        max_batch_bytes: float = math.inf,
    ) -> None:
        if max_batch_atoms < 1:
            raise ValueError(f"max_batch_atoms must be at least 1, got {max_batch_atoms}")
        if max_batch_bytes <= 0:
            raise ValueError(f"max_batch_bytes must be positive, got {max_batch_bytes}")
        self._n_atoms = n_atoms
        self._max_batch_atoms = max_batch_atoms
        self._bytes = memory_bytes or [0.0] * len(n_atoms)
        self._max_batch_bytes = max_batch_bytes
        self._waiting: deque[int] = deque()

    def put(self, index: int) -> None:
        """Append structure `index` to the end of the queue."""
        self._waiting.append(index)

    def __len__(self) -> int:
        return len(self._waiting)

    def take(self, atoms_in_batch: int, bytes_in_batch: float = 0.0) -> list[int]:
        """Pop the longest queue prefix that fits next to the running batch's atoms and bytes."""
        taken: list[int] = []
        while self._waiting:
            index = self._waiting[0]
            size, memory = self._n_atoms[index], self._bytes[index]
            batch_empty = atoms_in_batch == 0 and not taken
            too_many_atoms = atoms_in_batch + size > self._max_batch_atoms
            too_much_memory = bytes_in_batch + memory > self._max_batch_bytes
            if not batch_empty and (too_many_atoms or too_much_memory):
                break
            taken.append(self._waiting.popleft())
            atoms_in_batch += size
            bytes_in_batch += memory
        return taken
