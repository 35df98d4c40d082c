"""Initial population: the known materials inside the run's chemistry, most stable first."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.seeds import initial_population, matching_rows

LI_MN_CO_O = ChemistryLimits(elements=("Li", "Mn", "Co", "O"), max_atoms=12, max_elements=3)


@pytest.fixture(scope="module")
def known() -> KnownMaterials:
    return KnownMaterials.load()


def test_seeds_fit_the_chemistry_and_are_known(known: KnownMaterials) -> None:
    seeds = initial_population(LI_MN_CO_O, 8, known)
    assert len(seeds) == 8 and len({s.material_id for s in seeds}) == 8
    ids = set(known.table["material_id"])
    for structure, material_id in seeds:
        elements = {el.symbol for el in structure.composition.elements}
        assert elements <= set(LI_MN_CO_O.elements) and 2 <= len(elements) <= 3
        assert len(structure) <= LI_MN_CO_O.max_atoms
        assert material_id in ids
        assert structure.properties == {"material_id": material_id, "source": "mp20"}
    assert [s.material_id for s in initial_population(LI_MN_CO_O, 8, known)] == [
        s.material_id for s in seeds
    ]  # deterministic


def test_most_stable_first_in_turns_across_systems_compounds_before_elements(known: KnownMaterials) -> None:
    rows = matching_rows(ChemistryLimits(elements=("Li", "O")), known)
    formulas = rows["reduced_formula"].tolist()
    # Li2O (on the hull) before Li2O2 (above it); every compound before Li and O2 cells
    assert formulas[:2] == ["Li2O", "Li2O2"]
    first_elemental = next(i for i, f in enumerate(formulas) if f in ("Li", "O2"))
    assert all(f not in ("Li", "O2") for f in formulas[:first_elemental])
    assert set(formulas[first_elemental:]) == {"Li", "O2"}
    assert rows["e_above_hull"].iloc[0] == pytest.approx(0.0, abs=1e-6)


def test_seeds_stay_inside_the_chemical_systems(known: KnownMaterials) -> None:
    limits = ChemistryLimits(
        elements=("Li", "Fe", "O", "Na", "Cl"),
        systems=(frozenset({"Li", "Fe", "O"}), frozenset({"Na", "Cl"})),
    )
    seeds = initial_population(limits, 12, known)
    assert len(seeds) == 12
    systems = {frozenset(el.symbol for el in s.structure.composition.elements) for s in seeds}
    assert all(s <= {"Li", "Fe", "O"} or s <= {"Na", "Cl"} for s in systems)
    assert any(s <= {"Na", "Cl"} for s in systems) and any("Fe" in s for s in systems)  # both systems
    first_two = {
        seeds[0].structure.composition.reduced_formula,
        seeds[1].structure.composition.reduced_formula,
    }
    assert "NaCl" in first_two  # each system's most stable material comes first


def test_csp_target_returns_only_that_composition(known: KnownMaterials) -> None:
    limits = ChemistryLimits(elements=("Li", "Co", "O"), target=Composition("Li2Co2O4"))
    seeds = initial_population(limits, 10, known)
    assert sorted(s.material_id for s in seeds) == ["mp-1097885", "mp-22526", "mp-849273", "mp-853240"]
    assert seeds[0].material_id == "mp-22526"  # the one on the hull


def test_fewer_or_no_seeds_when_few_fit(known: KnownMaterials) -> None:
    small = ChemistryLimits(elements=("Li", "O"), max_atoms=3)
    assert {s.structure.composition.reduced_formula for s in initial_population(small, 10, known)} == {
        "Li2O",
        "Li",
        "O2",
    }
    assert initial_population(ChemistryLimits(elements=("Fr", "Ra")), 5, known) == []
    assert initial_population(LI_MN_CO_O, 0, known) == []
