"""Prompt templates: plain-text files with named fields such as `{parents_json}`.

The builtin templates ship inside the package (matsearch/proposers/templates/*.txt). A spec may name
its own directory: every `<kind>.txt` found there replaces the builtin of that kind. Braces that do
not enclose a lowercase field name (JSON examples, for instance) are left as they are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from matsearch.errors import SpecError

logger = logging.getLogger(__name__)

TEMPLATE_KINDS = (
    "system",
    "reproduce",
    "mutate",
    "crossover",
    "zero_shot",
    "csp",
    "repair",
    "objective_stability",
    "objective_bulk_modulus",
)
FIELDS = frozenset(
    {
        "parents_json",  # JSON list of parents: formula, scores (eV/atom), structure text
        "n_parents",
        "n_children",
        "elements",  # comma-separated element symbols
        "max_atoms",
        "max_elements",
        "target_formula",  # CSP target (reduced formula)
        "objective_text",  # what to optimise, in words
        "error",  # parse problems handed back in a repair prompt
    }
)
REQUIRED_FIELDS = {
    "reproduce": {"parents_json", "n_children"},
    "mutate": {"parents_json", "n_children"},
    "crossover": {"parents_json", "n_children"},
    "zero_shot": {"n_children"},
    "csp": {"target_formula", "n_children"},
    "repair": {"error"},
}
OBJECTIVES = {"stability": "objective_stability", "bulk_modulus": "objective_bulk_modulus"}

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


def objective_text(
    templates: PromptTemplates,
    objectives: Iterable[str] = ("stability",),
    user_text: str | None = None,
) -> str:
    """The goal stated in prompts: builtin goals by name ('stability', 'bulk_modulus') then the
    user's own text."""
    parts = []
    for name in objectives:
        if name not in OBJECTIVES:
            raise SpecError(f"unknown prompt objective '{name}'; allowed: {', '.join(OBJECTIVES)}")
        parts.append(templates.render(OBJECTIVES[name]))
    if user_text:
        parts.append(user_text.strip())
    return "\n".join(parts)
