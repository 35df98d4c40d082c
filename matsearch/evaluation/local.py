"""In-process executor: the evaluator's own batching, one chunk at a time."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from pymatgen.core import Structure

from matsearch.evaluation.evaluator import Evaluator
from matsearch.results import Evaluation


class LocalExecutor:
    """Evaluate `chunk_size` structures per evaluator call in this process, yielding after each chunk."""

    name = "local"

    def __init__(self, evaluator: Evaluator, chunk_size: int = 32) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.evaluator = evaluator
        self.chunk_size = chunk_size

    def evaluate(
        self, structures: Sequence[Structure], properties: Collection[str] = ()
    ) -> Iterator[tuple[int, Evaluation]]:
        for start in range(0, len(structures), self.chunk_size):
            chunk = list(structures[start : start + self.chunk_size])
            yield from enumerate(self.evaluator.evaluate(chunk, properties), start=start)

    def close(self) -> None:
        """Nothing to release: the evaluator lives as long as the search."""
