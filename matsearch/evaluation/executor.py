"""Executor protocol: relax many structures somewhere and stream the results back to the driver."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from pymatgen.core import Structure

from matsearch.results import RelaxResult


@runtime_checkable
class Executor(Protocol):
    """Runs relaxations; the engine (driver) owns the loop and writes every result to the store."""

    name: str

    def relax(self, structures: Sequence[Structure]) -> Iterator[tuple[int, RelaxResult]]:
        """Yield `(index into structures, result)` as results arrive; every index exactly once."""
        ...

    def close(self) -> None:
        """Release workers and models."""
        ...
