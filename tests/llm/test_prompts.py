"""Prompt templates: builtin ones ship with the package, a spec's folder replaces them per kind,
and mistakes in a user's template are reported when the run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from matsearch.errors import SpecError
from matsearch.proposers.chemistry_text import composition_rule, systems_text
from matsearch.proposers.goals import goals_from_objectives
from matsearch.proposers.prompts import (
    FIELDS,
    TEMPLATE_KINDS,
    builtin_template_dir,
    goal_text,
    load_templates,
)
from matsearch.proposing import chemistry_limits
from matsearch.spec import Objective, parse_spec
from matsearch.structures.limits import ChemistryLimits

EXAMPLES = Path(__file__).resolve().parents[2] / "prompts"

VALUES = {name: f"<{name}>" for name in FIELDS}


def test_builtin_templates_are_package_data_and_render() -> None:
    folder = builtin_template_dir()
    assert folder.parts[-3:] == ("matsearch", "proposers", "templates")
    templates = load_templates()
    for kind in TEMPLATE_KINDS:
        assert templates.sources[kind] == str(folder / f"{kind}.txt")
        text = templates.render(kind, **VALUES)
        assert "{" + "parents_json}" not in text  # every field was filled
    system = templates.render("system", **VALUES)
    assert "<elements>" in system and "<answer_format>" in system
    answer = templates.render("answer_json", **VALUES)
    assert '{"structures": [{"formula"' in answer  # JSON braces kept
    assert "<parents_json>" in templates.render("crossover", **VALUES)
    assert "<error>" in templates.render("repair", **VALUES)
    assert "<target_formula>" in templates.render("csp", **VALUES)


def test_user_folder_replaces_only_the_kinds_it_holds(tmp_path: Path) -> None:
    (tmp_path / "mutate.txt").write_text("Mutate {parents_json} into {n_children} children. {json}")
    with pytest.raises(SpecError, match=r"unknown field\(s\) json; allowed: answer_format, composition"):
        load_templates(tmp_path)
    (tmp_path / "mutate.txt").write_text('Mutate {parents_json} into {n_children}; {"a": 1}')
    templates = load_templates(tmp_path)
    assert templates.sources["mutate"] == str(tmp_path / "mutate.txt")
    assert templates.sources["crossover"] == str(builtin_template_dir() / "crossover.txt")
    assert templates.render("mutate", parents_json="[]", n_children=3) == 'Mutate [] into 3; {"a": 1}'


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "mutation.txt",
            "x",
            r"mutation.txt' has an unknown name; allowed: system.txt, reproduce.txt",
        ),
        ("repair.txt", "Fix it.", r"repair.txt must contain \{error\}"),
        ("csp.txt", "Predict {n_children}.", r"csp.txt must contain \{target_formula\}"),
    ],
)
def test_template_mistakes_are_spec_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(SpecError, match=message):
        load_templates(tmp_path)


def test_missing_template_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="prompt template directory '.*nowhere' does not exist"):
        load_templates(tmp_path / "nowhere")


def test_goal_names_every_objective_with_unit_direction_target_and_bounds() -> None:
    objectives = [
        Objective(name="e_above_hull", bounds=(None, 0.1)),
        Objective(name="bulk_modulus", direction="max", bounds=(100.0, None)),
        Objective(name="custom:density", target=5.0),
    ]
    goals = goals_from_objectives(objectives, {"density": "Mass density in g/cm³."})
    text = goal_text(load_templates(), goals, "pareto", "Prefer layered oxides.")
    lines = text.splitlines()
    assert lines[0].startswith("Goal of this search: do well on these 3 objectives")
    assert lines[1].startswith("- e_above_hull (eV/atom): minimise; must be at most 0.1 eV/atom.")
    assert lines[2].startswith("- bulk_modulus (GPa): maximise; must be at least 100 GPa.")
    assert lines[3] == "- custom:density: as close as possible to 5. Mass density in g/cm³."
    assert lines[4] == "Prefer layered oxides."
    weighted = goal_text(load_templates(), goals, "weighted")
    assert "weighted sum" in weighted and "; weight 1." in weighted
    single = goal_text(load_templates(), ())  # no objectives given: the spec's default
    assert "e_above_hull (eV/atom): minimise" in single and "Prefer" not in single


def test_charge_balance_is_asked_only_where_it_applies() -> None:
    assert "need no charge balance" in composition_rule(["Fe", "Al", "Si"])
    assert "need no charge balance" in composition_rule(["Ti", "Al", "N"])  # MAX phases, nitrides
    assert "Keep every compound with oxygen or a halogen charge-balanced" in composition_rule(
        ["Li", "Fe", "O"]
    )
    assert "need not be" in composition_rule(["Li", "O"], charge_neutrality=False)


def test_chemical_systems_are_stated() -> None:
    spec = parse_spec({"name": "s", "chemistry": {"elements": ["F"], "systems": ["Li-Fe-O", "Fe-Al"]}})
    text = systems_text(chemistry_limits(spec))
    assert "one of the chemical systems F-Fe-Li-O, Al-F-Fe" in text  # loose elements join every system
    assert systems_text(ChemistryLimits(elements=("Na", "Cl"))) == "any combination of them is allowed"


def test_example_prompt_folder_holds_the_defaults_and_loads() -> None:
    """prompts/ at the top level is the editable copy users start from."""
    for kind in TEMPLATE_KINDS:
        example = (EXAMPLES / f"{kind}.txt").read_text(encoding="utf-8")
        assert example == (builtin_template_dir() / f"{kind}.txt").read_text(encoding="utf-8")
    templates = load_templates(EXAMPLES)
    assert templates.sources["system"] == str(EXAMPLES / "system.txt")


def test_every_field_is_documented() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in FIELDS:
        assert f"`{{{name}}}`" in readme, name
    for kind in TEMPLATE_KINDS:
        assert f"`{kind}`" in readme, kind
