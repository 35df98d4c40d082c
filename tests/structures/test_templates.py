"""CSP templates: known structures of the target's stoichiometry type, decorated with its elements."""

from __future__ import annotations

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition

from matsearch.structures.known import KnownMaterials
from matsearch.structures.templates import template_decorations
from matsearch.structures.validity import elemental_volume


@pytest.fixture(scope="module")
def known() -> KnownMaterials:
    return KnownMaterials.load()


@pytest.fixture(scope="module")
def nacl(known: KnownMaterials) -> list:
    return template_decorations(Composition("NaCl"), 2, known)


def test_templates_never_come_from_the_target_s_own_formula(known: KnownMaterials, nacl: list) -> None:
    assert known.rows("NaCl")  # the index knows the answer, yet never hands it in
    table = known.table.set_index("material_id")
    assert nacl
    for template in nacl:
        assert template.template_formula != "NaCl"
        assert table.at[template.template_id, "reduced_formula"] == template.template_formula
        assert Composition(template.template_formula).anonymized_formula == "AB"


def test_decorations_have_the_target_composition_and_scaled_volume(known: KnownMaterials, nacl: list) -> None:
    table = known.table.set_index("material_id")
    for template in nacl:
        structure = template.structure
        assert structure.composition.reduced_formula == "NaCl" and len(structure) <= 2
        source = known.structure(
            int(known.table.index[known.table["material_id"] == template.template_id][0])
        )
        assert len(source) == len(structure) and table.at[template.template_id, "n_sites"] == len(structure)
        expected = (
            source.volume * elemental_volume(structure.composition) / elemental_volume(source.composition)
        )
        assert structure.volume == pytest.approx(expected, rel=1e-9)
        assert sorted(template.mapping.values()) == ["Cl", "Na"]
    scores = [t.score for t in nacl]
    assert scores == sorted(scores, reverse=True)


def test_templates_reach_the_known_structure_and_are_distinct(known: KnownMaterials, nacl: list) -> None:
    """Rock salt NaCl is among the decorations (e.g. from KCl), each structure type once."""
    matcher = StructureMatcher()
    rocksalt = [known.structure(row) for row in known.rows("NaCl")]
    hits = [t for t in nacl if any(matcher.fit(t.structure, r) for r in rocksalt)]
    assert hits and hits[0].template_formula != "NaCl"
    for i, a in enumerate(nacl[:12]):
        assert not any(matcher.fit(a.structure, b.structure) for b in nacl[i + 1 : 12])


def test_site_assignments_keep_the_amounts(known: KnownMaterials) -> None:
    """In ABC2 → MgZrPd2 the element with amount 2 always becomes Pd."""
    templates = template_decorations(Composition("MgZrPd2"), 4, known)
    assert templates
    for template in templates:
        source = Composition(template.template_formula)
        doubled = next(el.symbol for el in source.elements if source[el] == 2)
        assert template.mapping[doubled] == "Pd"
        assert template.structure.composition.reduced_formula == "MgZrPd2"


def test_no_template_without_a_known_stoichiometry(known: KnownMaterials) -> None:
    assert template_decorations(Composition("NaCl"), 1, known) == []  # no 1-atom binary
