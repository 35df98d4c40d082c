"""Executor protocol: evaluate many structures where the model lives and stream the results back."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Protocol, runtime_checkable

from pymatgen.core import Structure

from matsearch.results import Evaluation


@runtime_checkable
class Executor(Protocol):
    """Runs the evaluation stage; the engine (driver) owns the loop and writes every result to the store."""

    name: str

    def evaluate(
        self, structures: Sequence[Structure], properties: Collection[str] = ()
    ) -> Iterator[tuple[int, Evaluation]]:
        """Relax each structure and compute `properties` (see evaluator.PROPERTY_OBJECTIVES) on it;
        yield `(index into structures, evaluation)` as results arrive, every index exactly once."""
        ...

    def close(self) -> None:
        """Release workers and models."""
        ...
