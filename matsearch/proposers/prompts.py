"""Prompt templates: plain-text files with named fields such as `{parents_json}`.

The builtin templates ship inside the package (matsearch/proposers/templates/*.txt). A spec may name
its own directory: every `<kind>.txt` found there replaces the builtin of that kind. Braces that do
not enclose a lowercase field name (JSON examples, for instance) are left as they are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from matsearch.errors import SpecError
from matsearch.proposers.goals import DEFAULT_GOALS, Goal, goal_line, selection_rule

logger = logging.getLogger(__name__)

TEMPLATE_KINDS = (
    "system",
    "reproduce",
    "mutate",
    "crossover",
    "zero_shot",
    "csp",
    "csp_examples",
    "repair",
    "goal",
    "answer_json",
    "answer_poscar",
)
FIELDS = frozenset(
    {
        "parents_json",  # JSON list of parents: formula, scores (units in the goal), structure text
        "n_parents",
        "n_children",
        "elements",  # comma-separated element symbols
        "systems",  # which element combinations are allowed (chemical systems), in words
        "max_atoms",
        "max_elements",
        "target_formula",  # CSP target (reduced formula)
        "objective_text",  # the goal: the rendered `goal` template plus the spec's objective_text
        "objective_lines",  # one line per objective: name (unit), direction/target, bounds, meaning
        "selection_rule",  # how the objectives are combined (one, Pareto, weighted sum)
        "composition_rule",  # charge-balance sentence fitting the compositions at hand
        "answer_format",  # the rendered answer_json or answer_poscar template
        "error",  # problems handed back in a repair prompt, one per line
        "examples_json",  # CSP: JSON list of decorated templates (formula, template, structure text)
    }
)
REQUIRED_FIELDS = {
    "reproduce": {"parents_json", "n_children"},
    "mutate": {"parents_json", "n_children"},
    "crossover": {"parents_json", "n_children"},
    "zero_shot": {"n_children"},
    "csp": {"target_formula", "n_children"},
    "csp_examples": {"examples_json"},
    "repair": {"error"},
    "goal": {"objective_lines"},
}

_FIELD = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class PromptTemplates:
    """Template text by kind, and the file each came from."""

    texts: Mapping[str, str]
    sources: Mapping[str, str]

    def fields(self, kind: str) -> set[str]:
        return set(_FIELD.findall(self.texts[kind]))

    def render(self, kind: str, **values: object) -> str:
        """The template of `kind` with every `{field}` replaced by str(value)."""
        missing = self.fields(kind) - set(values)
        if missing:
            raise ValueError(f"template '{kind}' needs values for {sorted(missing)}")
        return _FIELD.sub(lambda m: str(values[m[1]]), self.texts[kind]).strip()


def builtin_template_dir() -> Path:
    """Folder of the templates shipped with matsearch (package data)."""
    return Path(str(resources.files("matsearch.proposers") / "templates"))


def _check(kind: str, text: str, source: str) -> None:
    used = set(_FIELD.findall(text))
    unknown = used - FIELDS
    if unknown:
        raise SpecError(
            f"prompt template {source} uses unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(FIELDS))}"
        )
    missing = REQUIRED_FIELDS.get(kind, set()) - used
    if missing:
        needed = ", ".join("{" + f + "}" for f in sorted(missing))
        raise SpecError(f"prompt template {source} must contain {needed}")


def load_templates(directory: Path | str | None = None) -> PromptTemplates:
    """Builtin templates, with any `<kind>.txt` in `directory` taking their place."""
    builtin = builtin_template_dir()
    texts: dict[str, str] = {}
    sources: dict[str, str] = {}
    for kind in TEMPLATE_KINDS:
        path = builtin / f"{kind}.txt"
        texts[kind], sources[kind] = path.read_text(encoding="utf-8"), str(path)
    if directory is not None:
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            raise SpecError(f"prompt template directory '{folder}' does not exist")
        for path in sorted(folder.glob("*.txt")):
            if path.stem not in TEMPLATE_KINDS:
                raise SpecError(
                    f"prompt template '{path}' has an unknown name; allowed: "
                    + ", ".join(f"{k}.txt" for k in TEMPLATE_KINDS)
                )
            texts[path.stem], sources[path.stem] = path.read_text(encoding="utf-8"), str(path)
            logger.info("prompt template %s from %s", path.stem, path)
    for kind in TEMPLATE_KINDS:
        _check(kind, texts[kind], sources[kind])
    return PromptTemplates(texts=texts, sources=sources)


def goal_text(
    templates: PromptTemplates,
    goals: Sequence[Goal],
    selection: str = "pareto",
    user_text: str | None = None,
    **values: object,
) -> str:
    """The goal stated in prompts: the `goal` template filled with one line per objective, then
    the user's own text. `values` fill any other field the goal template uses."""
    goals = tuple(goals) or DEFAULT_GOALS
    weighted = selection == "weighted" and len(goals) > 1
    text = templates.render(
        "goal",
        **values
        | {
            "objective_lines": "\n".join(goal_line(g, weighted=weighted) for g in goals),
            "selection_rule": selection_rule(goals, selection),
        },
    )
    return text + ("\n" + user_text.strip() if user_text and user_text.strip() else "")
