"""Proposer protocol: turns parents into child structures. Knows nothing about MLIPs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.structures.limits import ChemistryLimits

Screen = Callable[[Structure], str | None]
"""A check a child must pass before it counts: None to accept it, else the reason it fails."""


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
