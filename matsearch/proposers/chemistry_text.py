"""The run's chemistry in words for prompts: allowed chemical systems and the charge-balance rule
that fits the compositions at hand (only compositions with oxygen or a halogen need one)."""

from __future__ import annotations

from collections.abc import Iterable

from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.validity import is_ionic


def systems_text(limits: ChemistryLimits) -> str:
    """Which element combinations are allowed, as a clause after the list of elements."""
    if not limits.systems:
        return "any combination of them is allowed"
    named = ", ".join("-".join(sorted(system)) for system in limits.systems)
    return f"the elements of each structure must belong to one of the chemical systems {named}"


def composition_rule(elements: Iterable[str], *, charge_neutrality: bool = True) -> str:
    """The charge-balance sentence for compositions made of `elements` (those of the parents, or
    the allowed ones when there are no parents)."""
    if not charge_neutrality:
        return "Compositions need not be charge-balanced."
    if not is_ionic(elements):
        return (
            "Without oxygen or a halogen these compositions need no charge balance (alloys, "
            "intermetallics, pnictides and hydrides are fine), but a compound with oxygen or a "
            "halogen must be charge-balanced (oxidation states summing to zero)."
        )
    return (
        "Keep every compound with oxygen or a halogen charge-balanced: oxidation states of its "
        "elements must sum to zero (alloys and intermetallics are exempt)."
    )
