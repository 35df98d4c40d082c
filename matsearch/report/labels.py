"""Axis titles with units and hover text of candidates, shared by the report's figures."""

from __future__ import annotations

import html
import math

from matsearch.candidate import Candidate
from matsearch.display import known_label, score_header, score_unit
from matsearch.spec import Objective

_GOAL = {"min": "minimise", "max": "maximise"}


def axis_title(objective: Objective) -> str:
    """E.g. 'bulk_modulus (GPa) — maximise' or 'energy_per_atom (eV/atom) — target -3'."""
    goal = f"target {objective.target:g}" if objective.target is not None else _GOAL[objective.direction]
    return f"{score_header(objective.name)} — {goal}"


def value_text(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return f"{name}: missing"
    return f"{name}: {value:.4g} {score_unit(name) or ''}".rstrip()


def hover_text(c: Candidate, names: list[str]) -> str:
    """Plotly hover text (HTML) of a candidate: id, formula, lineage and the named scores."""
    parents = f" ← {', '.join(f'#{p}' for p in c.parents)}" if c.parents else ""
    lines = [
        f"<b>#{c.id} {html.escape(c.formula or '?')}</b>",
        f"gen {c.generation} · {html.escape(c.origin)}/{html.escape(c.operator)}{parents}",
        html.escape(
            f"known as / new: {known_label(c.known_id, c.novelty, c.flags, c.extra.get('hull_entry'))}"
        ),
        *(html.escape(value_text(n, c.scores.get(n))) for n in names),
    ]
    return "<br>".join(lines)
