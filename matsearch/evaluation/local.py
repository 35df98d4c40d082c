"""In-process executor: the relaxer's own batching, one chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pymatgen.core import Structure

from matsearch.evaluation.relaxer import Relaxer
from matsearch.results import RelaxResult


class LocalExecutor:
    """Relax `chunk_size` structures per relaxer call in this process, yielding after each chunk."""

    name = "local"

    def __init__(self, relaxer: Relaxer, chunk_size: int = 32) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.relaxer = relaxer
        self.chunk_size = chunk_size

    def relax(self, structures: Sequence[Structure]) -> Iterator[tuple[int, RelaxResult]]:
        for start in range(0, len(structures), self.chunk_size):
            chunk = list(structures[start : start + self.chunk_size])
            yield from enumerate(self.relaxer.relax(chunk), start=start)

    def close(self) -> None:
        """Nothing to release: the relaxer lives as long as the search."""
