"""Axis titles with units and hover text of candidates, shared by the report's figures."""

from __future__ import annotations

import html
import math

from matsearch.candidate import Candidate
from matsearch.spec import Objective
from matsearch.summary import score_unit

_GOAL = {"min": "minimise", "max": "maximise"}


def unit_text(name: str) -> str:
    """'eV/atom', 'GPa', or a note that a custom score carries its own function's unit."""
    return score_unit(name) or "unit of the custom function"


def axis_title(objective: Objective) -> str:
    """E.g. 'bulk_modulus (GPa) — maximise' or 'energy_per_atom (eV/atom) — target -3'."""
    goal = f"target {objective.target:g}" if objective.target is not None else _GOAL[objective.direction]
    return f"{objective.name} ({unit_text(objective.name)}) — {goal}"


def value_text(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return f"{name}: missing"
    return f"{name}: {value:.4g} {score_unit(name) or ''}".rstrip()


def known_text(c: Candidate) -> str:
    """'known mp-1265', 'new structure' or 'new composition', plus artefact flags."""
    label = f"known {c.known_id}" if c.known_id else (c.novelty or "not matched").replace("_", " ")
    return f"{label} ({', '.join(c.flags)})" if c.flags else label


def hover_text(c: Candidate, names: list[str]) -> str:
    """Plotly hover text (HTML) of a candidate: id, formula, lineage and the named scores."""
    parents = f" ← {', '.join(f'#{p}' for p in c.parents)}" if c.parents else ""
    lines = [
        f"<b>#{c.id} {html.escape(c.formula or '?')}</b>",
        f"gen {c.generation} · {html.escape(c.origin)}/{html.escape(c.operator)}{parents}",
        html.escape(known_text(c)),
        *(html.escape(value_text(n, c.scores.get(n))) for n in names),
    ]
    return "<br>".join(lines)
