"""The run's chemistry in words for prompts: allowed chemical systems and the charge-balance rule
that fits the compositions at hand (none for all-metal ones)."""

from __future__ import annotations

from collections.abc import Iterable

from matsearch.proposers.base import ChemistryLimits
from matsearch.structures.validity import all_metallic


def systems_text(limits: ChemistryLimits) -> str:
    """Which element combinations are allowed, as a clause after the list of elements."""
    if not limits.systems:
        return "any combination of them is allowed"
    in_systems = {symbol for system in limits.systems for symbol in system.split("-")}
    free = [e for e in limits.elements if e not in in_systems]
    text = "the elements of each structure must belong to one of the chemical systems " + ", ".join(
        limits.systems
    )
    if free:
        text += f" (any of {', '.join(free)} may be added to them)"
    return text


def composition_rule(elements: Iterable[str], *, charge_neutrality: bool = True) -> str:
    """The charge-balance sentence for compositions made of `elements` (those of the parents, or
    the allowed ones when there are no parents)."""
    if not charge_neutrality:
        return "Compositions need not be charge-balanced."
    if all_metallic(set(elements)):
        return (
            "These are metals and metalloids only: alloys and intermetallic compounds need no "
            "charge balance, but a structure that contains a non-metal must be charge-balanced "
            "(common oxidation states summing to zero)."
        )
    return (
        "Keep every compound charge-balanced: common oxidation states of its elements must sum "
        "to zero (compounds of metals and metalloids only are exempt)."
    )
