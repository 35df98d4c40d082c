"""Initial population from known crystals: MP-20 train structures that fit the run's chemistry.

Only the rows chosen are parsed from CIF; filtering uses the formula columns and the CIF's
``_chemical_formula_sum`` line, so a call costs well under a second after the table is loaded.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Structure

from matsearch import data
from matsearch.proposers.base import ChemistryLimits

logger = logging.getLogger(__name__)

_FORMULA_SUM = re.compile(r"_chemical_formula_sum\s+'?([^'\n]+)'?")
_COUNT = re.compile(r"[A-Z][a-z]?(\d*(?:\.\d+)?)")


class Seed(NamedTuple):
    """A known structure for generation 0 and its Materials Project id."""

    structure: Structure
    material_id: str


def initial_population(
    limits: ChemistryLimits,
    n: int,
    rng: np.random.Generator,
    splits: Sequence[str] = ("train",),
) -> list[Seed]:
    """Up to `n` MP-20 structures that fit `limits`, drawn without replacement with `rng`.

    A structure fits when all its elements are in `limits.elements`, it has at most
    `limits.max_elements` elements and `limits.max_atoms` sites, and (CSP) its reduced
    composition equals `limits.target`. Fewer than `n` (possibly none) are returned when fewer
    fit; the same `rng` state gives the same seeds. Each structure's `properties` hold
    `material_id` and `source` ("mp20").
    """
    if n <= 0:
        return []
    rows = matching_rows(limits, splits)
    if rows.empty:
        logger.info("no MP-20 structure fits elements %s", ",".join(limits.elements))
        return []
    picked = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    seeds = []
    for index in picked:
        row = rows.iloc[int(index)]
        structure = _parse_cif(row["cif"], row["material_id"])
        if structure is not None:
            structure.properties.update(material_id=row["material_id"], source="mp20")
            seeds.append(Seed(structure, row["material_id"]))
    logger.info("%d MP-20 seeds from %d that fit", len(seeds), len(rows))
    return seeds


def matching_rows(limits: ChemistryLimits, splits: Sequence[str] = ("train",)) -> pd.DataFrame:
    """MP-20 rows with a CIF in `splits` that fit `limits`, sorted by material_id."""
    table = _mp20_index()
    allowed = frozenset(limits.elements)
    keep = (
        table["split"].isin(list(splits))
        & table["elements"].map(lambda els: els <= allowed and len(els) <= limits.max_elements)
        & (table["n_sites"] <= limits.max_atoms)
    )
    rows = table[keep]
    if limits.target is not None and not rows.empty:
        target = limits.target.reduced_formula
        same = rows["reduced_formula"].map(lambda f: Composition(f).reduced_formula == target)
        rows = rows[same]
    return rows.sort_values("material_id", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class KnownMaterials:
    """MP-20 materials by reduced formula, for novelty checks; structures are parsed on demand."""

    cifs: dict[str, tuple[tuple[str, str], ...]]  # reduced formula -> ((material_id, cif), ...)
    _parsed: dict[str, list[Structure]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def formulas(self) -> frozenset[str]:
        """Reduced formulas (pymatgen convention) of the known materials."""
        return frozenset(self.cifs)

    def structures(self, reduced_formula: str) -> list[Structure]:
        """Known structures with this reduced formula (empty when none)."""
        if reduced_formula not in self._parsed:
            parsed = (_parse_cif(cif, mid) for mid, cif in self.cifs.get(reduced_formula, ()))
            self._parsed[reduced_formula] = [s for s in parsed if s is not None]
        return self._parsed[reduced_formula]


def mp20_known_formulas_and_structures(splits: Sequence[str] = ("train", "val")) -> KnownMaterials:
    """The MP-20 materials of `splits` that have a CIF, grouped by reduced formula."""
    table = _mp20_index()
    rows = table[table["split"].isin(list(splits))]
    grouped: dict[str, list[tuple[str, str]]] = {}
    columns = (rows["material_id"], rows["reduced_formula"], rows["cif"])
    for mid, formula, cif in zip(*columns, strict=True):
        grouped.setdefault(formula, []).append((mid, cif))
    return KnownMaterials({k: tuple(v) for k, v in grouped.items()})


def _mp20_index() -> pd.DataFrame:
    """MP-20 rows with a CIF plus their element sets and site counts (from the CIF header)."""
    return _mp20_index_at(str(data.dataset_path("mp20")))


@functools.lru_cache(maxsize=2)
def _mp20_index_at(path: str) -> pd.DataFrame:
    table = data.load_mp20()
    table = table[table["cif"].notna() & table["split"].notna()]
    return table.assign(
        elements=[data.formula_elements(f) for f in table["reduced_formula"]],
        n_sites=[_site_count(cif) for cif in table["cif"]],
    )


def _site_count(cif: str) -> int:
    """Number of sites from a pymatgen-written CIF's _chemical_formula_sum line."""
    match = _FORMULA_SUM.search(cif)
    if match is None:
        return 10**9  # unknown: never passes a max_atoms filter
    return int(sum(float(c) if c else 1.0 for c in _COUNT.findall(match.group(1))))


def _parse_cif(cif: str, material_id: str) -> Structure | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen's CIF rounding notes
            return Structure.from_str(cif, fmt="cif")
    except (ValueError, KeyError, IndexError) as exc:
        logger.warning("MP-20 %s: CIF cannot be parsed (%s); skipped", material_id, exc)
        return None
