"""Relaxer protocol: relax many structures and report energies. Knows nothing about proposers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pymatgen.core import Structure

from matsearch.results import RelaxResult


@runtime_checkable
class Relaxer(Protocol):
    """A named MLIP backend that relaxes a batch of structures.

    Implementations must never raise for a bad structure: a failed structure gets a
    RelaxResult with `error` set, and the others are still relaxed.
    """

    name: str

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        """Relax each structure (positions and cell); one result per input, same order."""
        ...

    def single_point(self, structures: list[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given, without relaxing."""
        ...
