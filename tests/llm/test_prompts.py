"""Prompt templates: builtin ones ship with the package, a spec's folder replaces them per kind,
and mistakes in a user's template are reported when the run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from matsearch.errors import SpecError
from matsearch.proposers.prompts import (
    FIELDS,
    TEMPLATE_KINDS,
    builtin_template_dir,
    load_templates,
    objective_text,
)

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
    assert "<elements>" in system and '{"structures": [{"formula"' in system  # JSON braces kept
    assert "<parents_json>" in templates.render("crossover", **VALUES)
    assert "<error>" in templates.render("repair", **VALUES)
    assert "<target_formula>" in templates.render("csp", **VALUES)


def test_user_folder_replaces_only_the_kinds_it_holds(tmp_path: Path) -> None:
    (tmp_path / "mutate.txt").write_text("Mutate {parents_json} into {n_children} children. {json}")
    with pytest.raises(SpecError, match=r"uses unknown field\(s\) json; allowed: elements, error"):
        load_templates(tmp_path)
    (tmp_path / "mutate.txt").write_text('Mutate {parents_json} into {n_children}; {"a": 1}')
    templates = load_templates(tmp_path)
    assert templates.sources["mutate"] == str(tmp_path / "mutate.txt")
    assert templates.sources["crossover"] == str(builtin_template_dir() / "crossover.txt")
    assert (
        templates.render("mutate", parents_json="[]", n_children=3) == 'Mutate [] into 3; {"a": 1}'
    )


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
def test_template_mistakes_are_spec_errors(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(SpecError, match=message):
        load_templates(tmp_path)


def test_missing_template_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="prompt template directory '.*nowhere' does not exist"):
        load_templates(tmp_path / "nowhere")


def test_objective_text_builtin_goals_and_user_text() -> None:
    templates = load_templates()
    stability = objective_text(templates)
    assert "energy above the convex hull" in stability
    both = objective_text(templates, ["stability", "bulk_modulus"], "Prefer layered oxides.")
    assert both.splitlines()[0] == stability
    assert "bulk modulus (GPa)" in both and both.endswith("Prefer layered oxides.")
    assert objective_text(templates, [], "Only my text.") == "Only my text."
    with pytest.raises(SpecError, match="unknown prompt objective 'hardness'; allowed: stability"):
        objective_text(templates, ["hardness"])
