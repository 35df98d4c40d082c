"""ChemistryLimits: the run spec's chemistry resolved to the plain values every stage checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pymatgen.core import Composition


@dataclass(frozen=True)
class ChemistryLimits:
    """What a structure may contain.

    `systems` are the allowed element sets (each spec system joined with the spec's loose
    `elements`); when empty, any combination of `elements` is allowed.
    """

    elements: tuple[str, ...]  # allowed element symbols
    max_atoms: int = 20  # atoms per cell
    max_elements: int = 4  # distinct elements per structure
    target: Composition | None = None  # CSP: children must have this reduced composition
    systems: tuple[frozenset[str], ...] = ()

    def allows(self, elements: Iterable[str]) -> bool:
        """True when a structure made of `elements` fits the allowed elements and systems."""
        present = frozenset(elements)
        if not present <= frozenset(self.elements) or len(present) > self.max_elements:
            return False
        return not self.systems or any(present <= system for system in self.systems)

    def outside_systems(self, elements: Iterable[str]) -> str | None:
        """A rejection reason when `elements` lie in none of the systems, else None."""
        present = frozenset(elements)
        if not self.systems or any(present <= system for system in self.systems):
            return None
        named = ", ".join("-".join(sorted(s)) for s in self.systems)
        return f"not_in_systems: {'-'.join(sorted(present))} is in none of {named}"
