"""Proposer protocol: turns parents into child structures. Knows nothing about MLIPs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from pymatgen.core import Composition, Structure

from matsearch.candidate import Candidate

if TYPE_CHECKING:
    from matsearch.proposers.goals import Goal


@dataclass(frozen=True)
class ChemistryLimits:
    """What a child may contain: the run spec's chemistry section resolved to plain values."""

    elements: tuple[str, ...]  # allowed element symbols
    max_atoms: int = 20  # atoms per cell
    max_elements: int = 4  # distinct elements per structure
    target: Composition | None = None  # CSP: children must have this reduced composition
    systems: tuple[str, ...] = ()  # chemical systems such as "Li-Fe-O"; a child lies in one of them


StructureCheck = Callable[[Structure], "str | None"]  # None: acceptable, else "kind: detail"


@dataclass(frozen=True)
class RunContext:
    """What a proposer may know about the run beyond its own spec entry: the objectives, how
    survivors are selected, and the validity check every child must pass (None: not checked
    before the engine does)."""

    goals: tuple[Goal, ...] = ()
    selection: str = "pareto"  # "pareto" or "weighted"
    charge_neutrality: bool = True  # the run rejects compositions that are not charge-balanced
    check: StructureCheck | None = None


@dataclass
class Proposal:
    """A proposed child. `structure` is None when the proposer produced something unusable;
    then `reason` says why (e.g. "parse_error: no lattice block")."""

    structure: Structure | None
    operator: str
    parents: list[int]
    origin: str
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Proposer(Protocol):
    """Anything that proposes children. Must be deterministic for a given `rng` state."""

    name: str

    def propose(
        self,
        parents: list[Candidate],
        n_children: int,
        limits: ChemistryLimits,
        rng: np.random.Generator,
    ) -> list[Proposal]:
        """Return up to `n_children` proposals derived from `parents` (scored candidates)."""
        ...
