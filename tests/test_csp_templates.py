"""A small real CSP run seeded from templates: never the target's own formula, recorded, named by status."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from pymatgen.core import Lattice, Structure
from rich.console import Console

from matsearch import Search
from matsearch.candidate import Candidate
from matsearch.report.tables import csp_sentence
from matsearch.run import Run
from matsearch.status_view import print_status
from matsearch.structures.known import KnownMaterials
from matsearch.summary import SCHEMA_PATH, run_summary


def _spec(folder: Path, **task: float) -> dict:
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    rocksalt.to(filename=str(folder / "NaCl.cif"))
    return {
        "name": "csp-templates",
        "seed": 2,
        "output": str(folder / "runs"),
        "population_size": 3,
        "children_per_generation": 3,
        "generations": 1,
        "mlip": {"steps": 40},
        "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 2},
        "task": {"kind": "csp", "target": "NaCl", "known_structure": str(folder / "NaCl.cif"), **task},
        "objectives": [{"name": "energy_per_atom", "direction": "min"}],
    }


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generation 0: two templates and one random start; generation 1: one template child."""
    folder = tmp_path_factory.mktemp("csp-templates")
    spec = _spec(folder, template_share=0.67, template_operator_share=0.34)
    return Search(spec).run().run_dir


def _templates(run_dir: Path) -> list[Candidate]:
    return [c for c in Run(run_dir).candidates() if c.operator == "template"]


def test_template_seeds_never_come_from_the_target_s_own_formula(template_run: Path) -> None:
    candidates = Run(template_run).candidates()
    assert [c.operator for c in candidates if c.generation == 0] == ["template", "template", "random"]
    assert [c.operator for c in candidates if c.generation == 1].count("template") == 1
    known = KnownMaterials.load().table.set_index("material_id")
    for c in _templates(template_run):
        assert c.origin == "template" and c.structure.composition.reduced_formula == "NaCl"
        assert c.extra["template_formula"] != "NaCl"
        assert known.at[c.extra["template_id"], "reduced_formula"] == c.extra["template_formula"]
        assert c.extra["screen_model"] == "chgnet-0.3.0" and c.extra["screen_energy_per_atom"] < 0
    energies = [c.extra["screen_energy_per_atom"] for c in _templates(template_run)]
    assert energies == sorted(energies)  # ranked by the fast model's single points, lowest first


def test_status_names_the_template_seeds_and_the_lowest_structure_s_template(template_run: Path) -> None:
    data = json.loads(json.dumps(run_summary(template_run)))
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()), cls=jsonschema.Draft202012Validator)
    csp = data["csp"]
    seeds = _templates(template_run)
    assert [s["id"] for s in csp["templates"]] == [c.id for c in seeds]
    assert csp["match"]["found"] and csp["match"]["generation"] == 0  # rock salt, e.g. from KCl
    template = csp["lowest"]["template"]
    assert template is not None, "rock salt from a template is the lowest NaCl structure"
    seed = next(c for c in seeds if c.id == template["seed_id"])
    assert template["template_id"] == seed.extra["template_id"]
    console = Console(file=io.StringIO(), width=200)
    print_status(console, data)
    table = console.file.getvalue()
    assert f"from template {template['template_id']} ({template['template_formula']})" in table
    assert f"templates: {len(seeds)} seeds" in table
    sentence = csp_sentence(data["csp"])  # the HTML report's CSP section
    assert f"comes from template {template['template_id']} ({template['template_formula']})" in sentence


def test_zero_template_shares_leave_random_starts(tmp_path: Path) -> None:
    search = Search(_spec(tmp_path, template_share=0.0, template_operator_share=0.0))
    assert search.templates == []
