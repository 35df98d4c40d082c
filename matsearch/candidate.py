"""Candidate: one proposed crystal, its lineage, status and scores as it moves through the loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pymatgen.core import Structure


class Status(StrEnum):
    """Lifecycle of a candidate; every change is committed to the run store at once."""

    PROPOSED = "proposed"  # produced by a proposer, not yet checked
    INVALID = "invalid"  # failed a validity check; `reason` says which
    DUPLICATE = "duplicate"  # matches a structure already in the history; `reason` names it
    VALID = "valid"  # passed validity and dedup; waiting to be relaxed
    FAILED = "failed"  # relaxation or scoring raised, exploded or timed out; `reason` says why
    SCORED = "scored"  # relaxed and all objectives computed


@dataclass
class Candidate:
    """A crystal candidate.

    Energies are eV/atom, e_above_hull eV/atom, bulk modulus GPa, wall times seconds.
    `structure` is the proposed (unrelaxed) structure; `relaxed` is set once relaxed.
    `scores` holds every objective value by objective name (same units as the objective).
    """

    id: int | None
    generation: int
    origin: str  # proposer name, e.g. "builtin", "openai"
    operator: str  # e.g. "substitution", "strain", "crossover", "random", "seed", "llm_mutate"
    parents: list[int] = field(default_factory=list)
    structure: Structure | None = None
    status: Status = Status.PROPOSED
    reason: str | None = None
    relaxed: Structure | None = None
    energy_per_atom: float | None = None  # relaxed MLIP energy, eV/atom
    initial_energy_per_atom: float | None = None  # MLIP energy of the proposed structure, eV/atom
    e_above_hull: float | None = None  # eV/atom
    converged: bool | None = None
    relax_steps: int | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # proposer metadata (prompt hash, tokens, ...)

    @property
    def formula(self) -> str | None:
        s = self.relaxed or self.structure
        return None if s is None else s.composition.reduced_formula

    @property
    def n_atoms(self) -> int | None:
        s = self.relaxed or self.structure
        return None if s is None else len(s)
