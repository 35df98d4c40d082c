"""Proposer protocol: turns parents into child structures. Knows nothing about MLIPs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.structures.limits import ChemistryLimits

if TYPE_CHECKING:
    from matsearch.proposers.goals import Goal


StructureCheck = Callable[[Structure], "str | None"]  # None: acceptable, else "kind: detail"


@dataclass(frozen=True)
class RunContext:
    """What a proposer may know about the run beyond its own spec entry: the objectives, how
    survivors are selected, the validity check every child must pass (None: not checked before
    the engine does), the screen a builtin child must pass before it counts (valid and not a
    structure the run has seen; a child that fails it is redrawn), and for CSP the best-ranked
    decorated templates (`examples`, best first; each structure's properties hold template_id and
    template_formula; empty unless a proposer asks for them)."""

    goals: tuple[Goal, ...] = ()
    selection: str = "pareto"  # "pareto" or "weighted"
    charge_neutrality: bool = True  # the run rejects ionic compositions that are not charge-balanced
    check: StructureCheck | None = None
    screen: StructureCheck | None = None
    examples: tuple[Structure, ...] = ()


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
    valid: bool = False  # passed the run's validity check when proposed (RunContext.check or screen)


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
