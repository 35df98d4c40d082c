"""Relaxer protocol: an MLIP backend that relaxes many structures. Knows nothing about proposers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pymatgen.core import Structure

from matsearch.relax_defaults import RelaxSettings
from matsearch.results import RelaxResult


@runtime_checkable
class FixedCellRelaxer(Protocol):
    """What a property scan needs: relax the positions of many structures in their fixed cells."""

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        """Relax positions only (fmax in eV/Å, at most `steps` steps); one result per input, same
        order, with `error` set for a structure that failed and never raising for one."""
        ...


@runtime_checkable
class Relaxer(FixedCellRelaxer, Protocol):
    """A named MLIP backend holding one model.

    Implementations must never raise for a bad structure: a failed structure gets a
    RelaxResult with `error` set, and the others are still relaxed.
    """

    name: str
    settings: RelaxSettings  # what `relax` follows (fmax, step cap, timeout, ...)

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        """Relax positions and cell of each structure; one result per input, same order."""
        ...

    def single_point(self, structures: list[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given, without relaxing; NaN on failure."""
        ...
