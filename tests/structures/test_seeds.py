"""Initial population from MP-20 train structures that fit the run's chemistry."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition

from matsearch import data
from matsearch.proposers.base import ChemistryLimits
from matsearch.structures.seeds import (
    initial_population,
    matching_rows,
    mp20_known_formulas_and_structures,
)

LI_MN_CO_O = ChemistryLimits(elements=("Li", "Mn", "Co", "O"), max_atoms=12, max_elements=3)


@pytest.fixture(scope="module")
def train_ids(data_dir) -> set[str]:
    return set(data.load_mp20("train")["material_id"])


def test_seeds_fit_the_chemistry(train_ids: set[str]) -> None:
    seeds = initial_population(LI_MN_CO_O, 8, np.random.default_rng(0))
    assert len(seeds) == 8
    for structure, material_id in seeds:
        elements = {el.symbol for el in structure.composition.elements}
        assert elements <= set(LI_MN_CO_O.elements)
        assert len(elements) <= LI_MN_CO_O.max_elements
        assert len(structure) <= LI_MN_CO_O.max_atoms
        assert material_id in train_ids
        assert structure.properties == {"material_id": material_id, "source": "mp20"}
    assert len({s.material_id for s in seeds}) == 8  # drawn without replacement


def test_seeds_are_reproducible_for_a_seeded_rng(data_dir) -> None:
    first = [s.material_id for s in initial_population(LI_MN_CO_O, 6, np.random.default_rng(3))]
    again = [s.material_id for s in initial_population(LI_MN_CO_O, 6, np.random.default_rng(3))]
    other = [s.material_id for s in initial_population(LI_MN_CO_O, 6, np.random.default_rng(4))]
    assert first == again
    assert first != other


def test_site_counts_from_cif_headers_match_parsed_structures(data_dir) -> None:
    rows = matching_rows(LI_MN_CO_O)
    assert len(rows) > 20
    seeds = initial_population(LI_MN_CO_O, len(rows), np.random.default_rng(0))
    assert len(seeds) == len(rows)  # every matching row parses
    n_sites = dict(zip(rows["material_id"], rows["n_sites"], strict=True))
    for structure, material_id in seeds:
        assert len(structure) == n_sites[material_id]


def test_csp_target_returns_only_that_composition(data_dir) -> None:
    limits = ChemistryLimits(elements=("Li", "Co", "O"), target=Composition("Li2Co2O4"))
    seeds = initial_population(limits, 10, np.random.default_rng(0))
    # MP-20 train holds three LiCoO2 polymorphs (a fourth, mp-22526, is in the test split)
    assert sorted(s.material_id for s in seeds) == ["mp-1097885", "mp-849273", "mp-853240"]
    assert {s.structure.composition.reduced_formula for s in seeds} == {"LiCoO2"}


def test_fewer_or_no_seeds_when_few_fit(data_dir) -> None:
    # Li-O in the MP-20 train split: Li2O, Li2O2, LiO8 and four O2 cells (2, 2, 2 and 8 sites)
    li_o = initial_population(ChemistryLimits(elements=("Li", "O")), 10, np.random.default_rng(0))
    assert sorted(s.structure.composition.reduced_formula for s in li_o) == [
        "Li2O",
        "Li2O2",
        "LiO8",
        "O2",
        "O2",
        "O2",
        "O2",
    ]
    small = ChemistryLimits(elements=("Li", "O"), max_atoms=3)
    assert sorted(
        s.material_id for s in initial_population(small, 10, np.random.default_rng(0))
    ) == [
        "mp-1009490",
        "mp-1960",
        "mp-610917",
        "mp-611836",
    ]
    assert (
        initial_population(ChemistryLimits(elements=("Fr", "Ra")), 5, np.random.default_rng(0))
        == []
    )
    assert initial_population(LI_MN_CO_O, 0, np.random.default_rng(0)) == []


def test_known_formulas_and_structures(data_dir) -> None:
    known = mp20_known_formulas_and_structures(("train", "val"))
    assert {"LiCoO2", "Li2O", "NaCl"} <= known.formulas
    structures = known.structures("LiCoO2")
    assert len(structures) == 3
    assert {s.composition.reduced_formula for s in structures} == {"LiCoO2"}
    assert known.structures("LiCoO2") is structures  # parsed once
    assert known.structures("Xe7Li") == []
