"""CSP templates: known structures of the target's stoichiometry type, decorated with its elements.

Crystal chemistry repeats itself: a target such as DyAgSn (anonymous formula ABC) often crystallises
in a structure type that other ABC compounds of the known-materials index already show. For a CSP
target this module

1. takes every known material with the target's anonymous formula (pymatgen's
   `anonymized_formula`), at most max_atoms sites, and never the target's own reduced formula (a
   known answer is not handed in);
2. scores each material's element-to-element mappings onto the target's elements (only those that
   keep the amounts: the A of ABC2 maps onto an element with amount 1) by Hautier et al.'s
   data-mined substitution affinities: the sum over its pairs of log(affinity / the table's
   floor), so pairs the table has seen substituting often count most;
3. decorates them, best-scored material first (each of its mappings, best first), the cell scaled
   by the ratio of the elements' own volumes (Σ n_i v_i), and keeps a decoration only when it
   reproduces no earlier one (StructureMatcher through `DuplicateIndex`): decorations of one
   structure type coincide, so each type is kept once, in the chemistry of its best-scored member.
   The work is capped: at most MAX_ROWS materials, each with its MAPPINGS_PER_ROW best mappings,
   are decorated, at most ROWS_PER_GROUP of one space group and number of sites (members of one
   structure type share both), and at most MAX_TEMPLATES decorations kept.

Ranking by energy (a fast model's single point on the rescaled decorations) is the caller's step:
this module knows nothing about models.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from functools import lru_cache

from pymatgen.core import Composition, Structure

from matsearch.structures.dedup import DuplicateIndex
from matsearch.structures.known import KnownMaterials
from matsearch.structures.prototypes import decorate, log_affinity

logger = logging.getLogger(__name__)

MAX_ROWS = 300  # known materials decorated per target, best mapping score first
ROWS_PER_GROUP = 3  # of those, at most this many per (space group, number of sites)
MAX_TEMPLATES = 48  # distinct decorations kept per target
MAPPINGS_PER_ROW = 2  # best site assignments decorated per known material


@dataclass(frozen=True)
class Template:
    """A known structure decorated with the target's elements.

    `structure` has the target's reduced composition (its properties hold template_id and
    template_formula); `template_id` and `template_formula` name the known material it was made
    from; `mapping` maps the template's elements to the target's; `score` is the mapping's summed
    log substitution affinity (higher: more likely).
    """

    structure: Structure
    template_id: str
    template_formula: str
    mapping: dict[str, str]
    score: float

    def provenance(self) -> dict[str, object]:
        """What a candidate made from it records (JSON-able)."""
        return {
            "template_id": self.template_id,
            "template_formula": self.template_formula,
            "mapping": dict(self.mapping),
            "substitution_score": round(self.score, 4),
        }


def template_decorations(
    target: Composition, max_atoms: int, known: KnownMaterials, limit: int = MAX_TEMPLATES
) -> list[Template]:
    """Up to `limit` structure types of `target`'s stoichiometry in `known` (≤ `max_atoms` sites,
    never `target`'s own reduced formula), decorated with its elements; best substitution score
    first (see the module docstring)."""
    target = target.reduced_composition
    candidates = _same_stoichiometry(target, max_atoms, known)
    table = known.table
    found: list[Template] = []
    seen = DuplicateIndex(known.tolerances)
    per_group: dict[tuple[int, int], int] = {}
    decorated = 0
    for row, mappings in candidates:
        if len(found) == limit or decorated == MAX_ROWS:
            break
        group = (int(table.at[row, "spacegroup"]), int(table.at[row, "n_sites"]))
        if per_group.get(group, 0) == ROWS_PER_GROUP:
            continue  # a likely repeat of a structure type already decorated
        per_group[group] = per_group.get(group, 0) + 1
        decorated += 1
        source = known.structure(row)
        for score, mapping in mappings[:MAPPINGS_PER_ROW]:
            structure = decorate(source, mapping)
            if structure is None or len(found) == limit or seen.find(structure) is not None:
                continue
            seen.add(len(found), structure)
            template_id, template_formula = (
                str(table.at[row, "material_id"]),
                str(table.at[row, "reduced_formula"]),
            )
            structure.properties = {"template_id": template_id, "template_formula": template_formula}
            found.append(
                Template(
                    structure=structure,
                    template_id=template_id,
                    template_formula=template_formula,
                    mapping=mapping,
                    score=score,
                )
            )
    logger.info(
        "%d template decorations for %s from %d known materials of its stoichiometry",
        len(found), target.reduced_formula, len(candidates),
    )  # fmt: skip
    return sorted(found, key=lambda t: -t.score)  # stable: ties keep the decoration order


Scored = tuple[int, list[tuple[float, dict[str, str]]]]  # row, its mappings best first


def _same_stoichiometry(target: Composition, max_atoms: int, known: KnownMaterials) -> list[Scored]:
    """Rows with the target's anonymous formula (not its reduced formula), each with its
    amount-keeping mappings onto the target's elements, best first; rows best-mapped first."""
    table = known.table
    width = len(target.elements)
    fits = (table["n_sites"] <= max_atoms) & table["elements"].map(len).eq(width)
    fits &= table["reduced_formula"] != target.reduced_formula
    fits &= table["n_sites"] % int(target.num_atoms) == 0
    amounts = sorted(target.get_el_amt_dict().values())
    scored: list[Scored] = []
    for row, formula in table.loc[fits, "reduced_formula"].items():
        if sorted(_amounts(formula).values()) != amounts:  # another anonymous formula
            continue
        mappings = _mappings(formula, target.reduced_formula)
        if mappings:
            scored.append((int(row), mappings))
    scored.sort(key=lambda item: (-item[1][0][0], item[0]))
    return scored


@lru_cache(maxsize=65536)
def _mappings(source_formula: str, target_formula: str) -> list[tuple[float, dict[str, str]]]:
    """One-to-one maps of the source's elements onto the target's that keep the reduced amounts,
    with their summed log affinities, best first."""
    source, target = _amounts(source_formula), _amounts(target_formula)
    old = sorted(source)
    found = []
    for perm in itertools.permutations(target):
        if all(math.isclose(source[a], target[b]) for a, b in zip(old, perm, strict=True)):
            mapping = dict(zip(old, perm, strict=True))
            found.append((sum(log_affinity(a, b) for a, b in mapping.items()), mapping))
    found.sort(key=lambda item: (-item[0], sorted(item[1].items())))
    return found


@lru_cache(maxsize=65536)
def _amounts(reduced_formula: str) -> dict[str, float]:
    """Element amounts of a reduced formula (equal sorted amounts: equal anonymous formulas)."""
    return Composition(reduced_formula).get_el_amt_dict()
