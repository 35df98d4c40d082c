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


# The only moves a candidate's status makes (Candidate's methods below make them): checked after
# proposing, evaluated once valid, and a scored candidate can turn out to have relaxed into an earlier one.
NEXT_STATUS: dict[Status, frozenset[Status]] = {
    Status.PROPOSED: frozenset({Status.INVALID, Status.DUPLICATE, Status.VALID}),
    Status.VALID: frozenset({Status.FAILED, Status.SCORED}),
    Status.SCORED: frozenset({Status.DUPLICATE}),
}


class Novelty(StrEnum):
    """Whether a relaxed candidate is a known material (see structures/known.py) or new."""

    KNOWN = "known"  # reproduces a material of the known-materials index; `known_id` names it
    NEW_STRUCTURE = "new_structure"  # a composition the index knows, in a structure it does not
    NEW_COMPOSITION = "new_composition"  # a reduced composition absent from the index


class Flag(StrEnum):
    """Why a relaxed candidate is not counted as a discovery (unless the spec admits it)."""

    ELEMENTAL = "elemental"  # one element only
    MOLECULAR = "molecular"  # 0-dimensional: isolated molecules or clusters


@dataclass
class Candidate:
    """A crystal candidate.

    Energies are eV/atom, e_above_hull eV/atom, bulk modulus GPa, wall times seconds.
    `structure` is the proposed (unrelaxed) structure; `relaxed` is set once relaxed.
    `scores` holds every objective value by objective name (same units as the objective).
    Once relaxed: `novelty` and `known_id` say whether it is a known material, `flags` why it is
    not a discovery, and a candidate that relaxed into an earlier one's structure has status
    DUPLICATE with `duplicate_of` naming that candidate.

    The status changes only through the methods below (`reject`, `reject_duplicate`, `accept`,
    `fail`, `score`, `relaxed_into`), which allow only the moves of `NEXT_STATUS`.
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
    forces: list[list[float]] | None = None  # [n_sites][3] eV/Å on the relaxed structure's sites
    stress_gpa: list[list[float]] | None = None  # 3x3 GPa at the relaxed structure, ASE sign (+ = tensile)
    converged: bool | None = None
    relax_steps: int | None = None
    novelty: Novelty | None = None
    known_id: str | None = None  # id of the known material the relaxed structure reproduces
    flags: list[Flag] = field(default_factory=list)
    duplicate_of: int | None = None  # earlier candidate with the same relaxed structure
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    extra: dict[str, Any] = field(default_factory=dict)  # proposer metadata (prompt hash, tokens, ...)
    # passed the validity check when proposed, so the engine does not run it again; not stored
    # (a resumed run checks again)
    valid_when_proposed: bool = field(default=False, compare=False, repr=False)

    @property
    def formula(self) -> str | None:
        s = self.relaxed or self.structure
        return None if s is None else s.composition.reduced_formula

    @property
    def n_atoms(self) -> int | None:
        s = self.relaxed or self.structure
        return None if s is None else len(s)

    def reject(self, reason: str) -> None:
        """PROPOSED → INVALID: it breaks a validity rule, or the proposer produced no structure."""
        self._move(Status.INVALID, reason)

    def reject_duplicate(self, earlier: int) -> None:
        """PROPOSED → DUPLICATE: its proposed structure matches candidate `earlier`'s."""
        self._move(Status.DUPLICATE, f"duplicate of candidate {earlier}")

    def accept(self) -> None:
        """PROPOSED → VALID: valid and unseen, waiting to be evaluated."""
        self._move(Status.VALID, None)

    def fail(self, reason: str) -> None:
        """VALID → FAILED: the evaluation or scoring could not finish; `reason` says why."""
        self._move(Status.FAILED, reason)

    def score(self) -> None:
        """VALID → SCORED: relaxed and every objective computed."""
        self._move(Status.SCORED, None)

    def relaxed_into(self, earlier: int) -> None:
        """SCORED → DUPLICATE: its relaxed structure is candidate `earlier`'s."""
        self._move(Status.DUPLICATE, f"relaxed into the structure of candidate {earlier}")
        self.duplicate_of = earlier

    def _move(self, status: Status, reason: str | None) -> None:
        if status not in NEXT_STATUS.get(self.status, frozenset()):
            raise ValueError(f"candidate {self.id}: status {self.status} cannot become {status}")
        self.status, self.reason = status, reason
