"""Every builtin objective is declared once (`objectives.OBJECTIVES`), and every consumer reads it:
spec validation, the prompt's goals, the evaluator, status, the export manifest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.display import score_header
from matsearch.evaluation.evaluator import PROPERTY_OBJECTIVES, SCANS
from matsearch.export_manifest import manifest_rows, objective_column, write_json
from matsearch.objectives import OBJECTIVES
from matsearch.proposers.goals import goal_line, goals_from_objectives
from matsearch.results import RelaxResult
from matsearch.scoring.hull import HullReference
from matsearch.scoring.objectives import apply_relax_result
from matsearch.spec import Objective, parse_spec
from matsearch.status_view import _header
from matsearch.summary import missing_score_reasons, score_columns

NAMES = sorted(OBJECTIVES)


@pytest.fixture(scope="module")
def hull() -> HullReference:
    return HullReference.named("mp20-subset")


def _rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])


@pytest.mark.parametrize("name", NAMES)
def test_spec_accepts_each_builtin_objective_with_its_default_direction(name: str) -> None:
    data = {"name": "x", "chemistry": {"elements": ["Na"]}, "objectives": [{"name": name}]}
    spec = parse_spec(data)
    assert spec.objectives[0].direction == OBJECTIVES[name].direction
    assert name in Objective.model_fields["name"].description


@pytest.mark.parametrize("name", NAMES)
def test_prompt_states_each_objective_with_its_unit_and_meaning(name: str) -> None:
    builtin = OBJECTIVES[name]
    (goal,) = goals_from_objectives([Objective(name=name)])
    line = goal_line(goal)
    assert f"{name} ({builtin.unit})" in line
    assert builtin.meaning.split(";")[0][1:] in line


@pytest.mark.parametrize("name", NAMES)
def test_each_objective_is_computed_where_its_source_says(name: str, hull: HullReference) -> None:
    """'relaxation': apply_relax_result sets it; 'property': the evaluator has its scan;
    'structure': the evaluator applies its function to the relaxed structure."""
    source = OBJECTIVES[name].source
    if source == "relaxation":
        candidate = Candidate(id=1, generation=1, origin="builtin", operator="strain", status=Status.VALID)
        result = RelaxResult(_rocksalt(), -3.4, -3.3, converged=True)
        apply_relax_result(candidate, result, hull)
        assert candidate.status == Status.SCORED and name in candidate.scores
        assert name not in PROPERTY_OBJECTIVES
    elif source == "property":
        assert name in SCANS and name in PROPERTY_OBJECTIVES
    else:
        assert name in PROPERTY_OBJECTIVES and name not in SCANS
        assert isinstance(OBJECTIVES[name].of_structure(_rocksalt()), float)


@pytest.mark.parametrize("name", NAMES)
def test_status_and_export_show_each_objective_with_its_unit(name: str, tmp_path: Path) -> None:
    builtin = OBJECTIVES[name]
    objective = Objective(name=name)
    candidate = Candidate(id=7, generation=1, origin="builtin", operator="strain", structure=_rocksalt())
    candidate.status, candidate.relaxed, candidate.scores = Status.SCORED, _rocksalt(), {name: 1.5}
    candidate.energy_per_atom = candidate.e_above_hull = 1.5  # the manifest's two base columns
    (column, *_) = score_columns([objective], [candidate])
    assert column["unit"] == builtin.unit
    assert _header(column) == f"{builtin.short} ({builtin.unit})"
    assert score_header(name) == f"{name} ({builtin.unit})"
    rows = manifest_rows([candidate], [objective], {})
    assert rows[0][builtin.column] == 1.5 and objective_column(name) == builtin.column
    document = json.loads(write_json(rows, [objective], tmp_path / "c.json").read_text())
    assert document["units"][builtin.column] == builtin.unit
    if builtin.source != "relaxation":  # a failed scan's reason reaches status
        candidate.scores, candidate.extra = {}, {f"{name}_error": "the fit failed"}
        assert missing_score_reasons(candidate) == {name: "the fit failed"}


def test_a_run_with_density_shows_it_with_its_unit_in_status_report_and_export(tmp_path: Path, cli) -> None:
    from matsearch import Search
    from matsearch.export import export_candidates
    from matsearch.report import make_report

    spec = {
        "name": "dense",
        "seed": 1,
        "output": str(tmp_path / "runs"),
        "chemistry": {"systems": ["Na-Cl"], "max_atoms": 4},
        "population_size": 3,
        "generations": 0,
        "mlip": {"steps": 20, "prerelax": None},
        "objectives": [{"name": "e_above_hull"}, {"name": "density"}],
    }
    package_logger = logging.getLogger("matsearch")
    package_logger.setLevel(logging.WARNING)  # as a user might; the run must leave it so
    try:
        run = Search(spec).run()
        assert package_logger.level == logging.WARNING
    finally:
        package_logger.setLevel(logging.NOTSET)
    assert "generation 0 done" in (run.run_dir / "run.log").read_text()  # INFO still reaches run.log
    scored = run.best()
    assert scored and all(c.scores["density"] == pytest.approx(c.relaxed.density) for c in scored)
    status = cli("status", str(run.run_dir))
    assert status.returncode == 0 and "ρ (g/cm³)" in status.stdout
    data = json.loads(cli("status", str(run.run_dir), "--json").stdout)
    assert {"name": "density", "unit": "g/cm³"}.items() <= data["scores"][1].items()
    assert "density (g/cm³)" in make_report(run.run_dir).read_text()
    out = tmp_path / "export"
    export_candidates(scored, out, ["csv", "json"], run.spec().objectives)
    document = json.loads((out / "candidates.json").read_text())
    assert document["units"]["density_g_per_cm3"] == "g/cm³"
    assert [r["density_g_per_cm3"] for r in document["candidates"]] == [c.scores["density"] for c in scored]
    assert "density_g_per_cm3" in (out / "candidates.csv").read_text().splitlines()[0]


def test_every_registry_names_exactly_what_the_spec_allows() -> None:
    """Each extension point is declared once; the spec (which may not import the layers that
    implement them) lists the same names, so a new entry cannot be unreachable or unknown."""
    from typing import get_args

    from matsearch.evaluation.evaluators import BACKENDS
    from matsearch.evaluation.executors import EXECUTORS
    from matsearch.proposers.builtin import DEFAULT_WEIGHTS, OPERATORS
    from matsearch.proposers.registry import PROPOSERS
    from matsearch.selection import SELECTIONS
    from matsearch.spec import BUILTIN_OPERATORS, ExecutorSpec, MLIPSpec, ProposerSpec, RunSpec

    assert set(BACKENDS) == set(get_args(MLIPSpec.model_fields["backend"].annotation))
    assert set(EXECUTORS) == set(get_args(ExecutorSpec.model_fields["kind"].annotation))
    assert set(OPERATORS) == set(BUILTIN_OPERATORS) == set(DEFAULT_WEIGHTS)
    assert set(SELECTIONS) == set(get_args(RunSpec.model_fields["selection"].annotation))
    (union, _) = get_args(ProposerSpec)
    assert set(PROPOSERS) == {get_args(m.model_fields["kind"].annotation)[0] for m in get_args(union)}
