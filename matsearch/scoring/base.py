"""Relaxer protocol: relax many structures and report energies. Knows nothing about proposers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pymatgen.core import Structure


@dataclass
class RelaxResult:
    """Outcome of relaxing one structure.

    On failure `structure` is None and `error` says why in one sentence
    (e.g. "relaxation exceeded 120 s wall-clock timeout").
    """

    structure: Structure | None  # relaxed structure
    energy_per_atom: float | None  # eV/atom at the relaxed structure
    initial_energy_per_atom: float | None  # eV/atom of the input structure
    converged: bool = False  # max force below fmax (and stress below its tolerance) at the end
    steps: int = 0  # optimiser steps taken
    wall_time_s: float = 0.0
    error: str | None = None
    forces_max: float | None = None  # eV/Å, at the last step
    forces: list[list[float]] | None = None  # [n_sites][3] eV/Å at the relaxed structure, site order
    stress_gpa: list[list[float]] | None = None  # 3x3 GPa at the relaxed structure, ASE sign (+ = tensile)
    magmoms: list[float] | None = None  # μB per site at the relaxed structure


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
