"""Hautier et al.'s data-mined ionic substitution probabilities (pymatgen's SubstitutionProbability),
as element-level affinities for the substitution operator and the prototype seeds."""

from __future__ import annotations

import math
from functools import lru_cache

from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability
from pymatgen.core import Species


@lru_cache(maxsize=65536)
def element_affinity(old: str, new: str) -> float:
    """Σ exp(λ) over all listed species pairs of the two elements; exp(α) if none is listed."""
    table = substitution_table()
    old_species = species_by_element().get(old, ())
    new_species = species_by_element().get(new, ())
    floor = math.exp(table.alpha)
    total = sum(
        math.exp(table.get_lambda(s_old, s_new))
        for s_old in old_species
        for s_new in new_species
        if table.get_lambda(s_old, s_new) != table.alpha
    )
    return total if total > 0 else floor


@lru_cache(maxsize=1)
def substitution_table() -> SubstitutionProbability:
    """pymatgen's default λ table, built once per process (its own class cache does not hold)."""
    return SubstitutionProbability()


@lru_cache(maxsize=1)
def table_species() -> tuple[Species, ...]:
    """Species of the substitution table in a fixed order (set order varies between runs)."""
    return tuple(sorted(substitution_table().species, key=str))


@lru_cache(maxsize=1)
def species_by_element() -> dict[str, tuple[Species, ...]]:
    """The table's species of each element, in `table_species` order."""
    grouped: dict[str, list[Species]] = {}
    for sp in table_species():
        grouped.setdefault(sp.symbol, []).append(sp)
    return {symbol: tuple(species) for symbol, species in grouped.items()}
