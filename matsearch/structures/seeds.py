"""Initial population from the known-materials index: the known crystals inside the run's chemistry.

Seeds are chosen deterministically, most stable first: the known materials that fit the limits
(elements, systems, max_elements, max_atoms, CSP target) are ranked within their own chemical
system by energy above the shipped hull (ties within 1e-4 eV/atom), then formation energy
(eV/atom), then id, and taken in turns across systems (every system's most stable material before
any system's second), compounds before elemental phases. The engine fills the rest of generation 0
with random symmetric structures."""

from __future__ import annotations

import logging
from typing import NamedTuple

import pandas as pd
from pymatgen.core import Structure

from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits

logger = logging.getLogger(__name__)

HULL_TIE_EV_PER_ATOM_DECIMALS = 4  # energies above hull equal to 1e-4 eV/atom rank as ties


class Seed(NamedTuple):
    """A known structure for generation 0 and its Materials Project id."""

    structure: Structure
    material_id: str


def initial_population(limits: ChemistryLimits, n: int, known: KnownMaterials) -> list[Seed]:
    """Up to `n` known structures that fit `limits`, most stable first (see the module docstring).

    Each structure's `properties` hold `material_id` and `source` (the index name).
    """
    if n <= 0:
        return []
    rows = matching_rows(limits, known)
    seeds = [Seed(known.structure(i), str(known.table.at[i, "material_id"])) for i in rows.index[:n]]
    logger.info("%d known seeds from %d that fit", len(seeds), len(rows))
    return seeds


def matching_rows(limits: ChemistryLimits, known: KnownMaterials) -> pd.DataFrame:
    """Rows of `known.table` that fit `limits`, in seed order (index = row of `known`)."""
    table = known.table
    fits = table["elements"].map(limits.allows) & (table["n_sites"] <= limits.max_atoms)
    rows = table[fits]
    if limits.target is not None:
        rows = rows[rows["reduced_formula"] == limits.target.reduced_formula]
    order = rows.assign(
        system=rows["elements"].map(lambda els: "-".join(sorted(els))),
        elemental=rows["elements"].map(lambda els: len(els) == 1),
        e_hull=rows["e_above_hull"].round(HULL_TIE_EV_PER_ATOM_DECIMALS).fillna(float("inf")),
    ).sort_values(["system", "e_hull", "formation_energy_per_atom", "material_id"], kind="stable")
    order["rank"] = order.groupby("system").cumcount()
    order = order.sort_values(
        ["elemental", "rank", "e_hull", "formation_energy_per_atom", "material_id"], kind="stable"
    )
    return rows.loc[order.index]
