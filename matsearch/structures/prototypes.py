"""Prototype seeds: known crystals of other chemical systems, decorated with the run's elements.

Every known material outside the run's chemistry with at least two elements, no more elements than
a chemical system and at most max_atoms sites is a prototype. Its elements are mapped one-to-one
onto a system's elements; a mapping scores the smallest log substitution affinity (Hautier et
al.'s data-mined table, as the substitution operator uses) of its element pairs, relative to the
table's floor, so a mapping scores above zero only when the table has seen every one of its
substitutions (keeping an element counts as its own, high, affinity). The best mappings, most
likely first, become structures: species replaced, the cell scaled by the ratio of the elements'
own volumes. Those that stay charge-balanced (common oxidation states, for any composition with a
non-metal), reproduce no known material and no earlier prototype are kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
from pymatgen.core import Composition, Structure

from matsearch.structures.dedup import DuplicateIndex
from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.substitution import element_affinity, substitution_table
from matsearch.structures.validity import elemental_volume

MAX_CANDIDATES_PER_SEED = 50  # decorated structures tried per prototype seed wanted


def prototype_seeds(limits: ChemistryLimits, n: int, known: KnownMaterials) -> list[Structure]:
    """Up to `n` decorated prototypes inside `limits`, best substitution score first. Each
    structure's properties hold `prototype` (the material id it was made from) and `mapping`."""
    if n <= 0 or limits.target is not None:
        return []
    seeds: list[Structure] = []
    seen = DuplicateIndex(known.tolerances)
    for row, mapping in _ranked(limits, known, n * MAX_CANDIDATES_PER_SEED):
        structure = decorate(known.structure(row), mapping)
        if structure is None or not limits.allows(mapping.values()) or len(structure) > limits.max_atoms:
            continue
        if not _balanced(structure.composition) or known.match(structure) is not None:
            continue
        if seen.find(structure) is not None:
            continue
        seen.add(len(seeds), structure)
        structure.properties = {"prototype": str(known.table.at[row, "material_id"]), "mapping": mapping}
        seeds.append(structure)
        if len(seeds) == n:
            break
    return seeds


def _ranked(
    limits: ChemistryLimits, known: KnownMaterials, count: int
) -> Iterator[tuple[int, dict[str, str]]]:
    """(row, element mapping) of the `count` best decorations: those using more of a system's
    elements first, then by score; each material with its most likely mapping."""
    table = known.table
    systems = limits.systems or (frozenset(limits.elements),)
    width = min(limits.max_elements, max(len(s) for s in systems))
    fits = (table["n_sites"] <= limits.max_atoms) & table["elements"].map(
        lambda els: 2 <= len(els) <= width and not limits.allows(els)
    )
    candidates = table[fits]
    scored: list[tuple[int, float, int, tuple[str, ...], tuple[str, ...]]] = []
    for system in systems:
        targets = sorted(system)
        for k in range(2, min(width, len(targets)) + 1):
            group = candidates[candidates["elements"].map(len) == k]
            if group.empty:
                continue
            sources = np.array([sorted(els) for els in group["elements"]])  # [n, k] symbols
            symbols = sorted(set(sources.ravel()))
            affinity = np.array([[log_affinity(a, b) for b in targets] for a in symbols])
            index = np.searchsorted(symbols, sources)
            perms = list(itertools.permutations(range(len(targets)), k))
            # score of every material under every mapping: its weakest substitution
            scores = np.stack([affinity[index, list(perm)].min(axis=1) for perm in perms], axis=1)
            best = scores.argmax(axis=1)  # one mapping per material: its most likely one
            for i in np.flatnonzero(scores[np.arange(len(best)), best] > 0):
                mapped = tuple(targets[j] for j in perms[best[i]])
                score = float(scores[i, best[i]])
                scored.append((k, score, int(group.index[i]), tuple(sources[i]), mapped))
    scored.sort(key=lambda item: (-item[0], -item[1], item[2], item[4]))
    for _, _, row, source, mapped in scored[:count]:
        yield row, dict(zip(source, mapped, strict=True))


def log_affinity(old: str, new: str) -> float:
    """log(affinity / floor): 0 for pairs the substitution table has never seen substituting
    (keeping an element counts as its own, high, affinity)."""
    floor = math.exp(substitution_table().alpha)
    return max(0.0, math.log(element_affinity(old, new) / floor))


def _balanced(composition: Composition) -> bool:
    """Decorations keep an ionic prototype's character: a composition with a non-metal must balance
    with the elements' common oxidation states (Al2O3 → Al2N3 does not); all-metal ones pass."""
    if all(el.is_metal or el.is_metalloid for el in composition.elements):
        return True
    common = {el.symbol: el.common_oxidation_states for el in composition.elements}
    return bool(composition.oxi_state_guesses(oxi_states_override=common, max_sites=-1))


def decorate(structure: Structure, mapping: dict[str, str]) -> Structure | None:
    """`structure` with its elements replaced by `mapping`, scaled by the elements' own volumes."""
    decorated = structure.copy()
    decorated.replace_species(mapping)
    old, new = elemental_volume(structure.composition), elemental_volume(decorated.composition)
    if old is None or new is None:
        return None
    decorated.scale_lattice(structure.volume * new / old)
    return decorated
