"""Atom-budget batching: which waiting structures join the running batch when others leave."""

from __future__ import annotations

from collections import deque


class AtomBudgetQueue:
    """First-in-first-out queue of structure indices that admits them while an atom budget allows.

    A structure larger than the whole budget is admitted alone, so nothing waits forever.
    """

    def __init__(self, n_atoms: list[int], max_batch_atoms: int) -> None:
        if max_batch_atoms < 1:
            raise ValueError(f"max_batch_atoms must be at least 1, got {max_batch_atoms}")
        self._n_atoms = n_atoms
        self._max_batch_atoms = max_batch_atoms
        self._waiting: deque[int] = deque()

    def put(self, index: int) -> None:
        """Append structure `index` to the end of the queue."""
        self._waiting.append(index)

    def __len__(self) -> int:
        return len(self._waiting)

    def take(self, atoms_in_batch: int) -> list[int]:
        """Pop the longest queue prefix that fits next to `atoms_in_batch` running atoms."""
        taken: list[int] = []
        while self._waiting:
            size = self._n_atoms[self._waiting[0]]
            batch_empty = atoms_in_batch == 0 and not taken
            if not batch_empty and atoms_in_batch + size > self._max_batch_atoms:
                break
            taken.append(self._waiting.popleft())
            atoms_in_batch += size
        return taken
