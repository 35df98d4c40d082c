"""Prototype seeds: known crystals of other systems decorated with the run's elements."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.prototypes import prototype_seeds


@pytest.fixture(scope="module")
def known() -> KnownMaterials:
    return KnownMaterials.load()


def _limits(system: str) -> ChemistryLimits:
    elements = tuple(system.split("-"))
    return ChemistryLimits(elements=elements, max_atoms=12, max_elements=3, systems=(frozenset(elements),))


def test_prototypes_are_new_balanced_structures_inside_the_system(known: KnownMaterials) -> None:
    seeds = prototype_seeds(_limits("Li-Co-O"), 4, known)
    assert len(seeds) == 4
    table = known.table.set_index("material_id")
    for structure in seeds:
        source = structure.properties["prototype"]
        assert source in table.index and not {"Li", "Co", "O"} >= table.at[source, "elements"]
        assert {el.symbol for el in structure.composition.elements} <= {"Li", "Co", "O"}
        assert known.match(structure) is None  # not a known material
        assert structure.composition.oxi_state_guesses(max_sites=-1)  # charge-balanced
        assert len(structure) <= 12
    assert "LiCoO2" in {s.composition.reduced_formula for s in seeds}  # e.g. NaCoO2-type → LiCoO2


def test_metals_map_onto_metals_and_csp_gets_none(known: KnownMaterials) -> None:
    seeds = prototype_seeds(_limits("Al-Ni"), 3, known)
    assert len(seeds) == 3 and all(s.composition.reduced_formula.startswith("Al") for s in seeds)
    csp = ChemistryLimits(elements=("Na", "Cl"), target=Composition("NaCl"))
    assert prototype_seeds(csp, 3, known) == []
