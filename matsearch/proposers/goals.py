"""The run's objectives as a proposer states them: name, unit, meaning, direction or target, bounds.

Builtin objectives carry their unit and meaning from `objectives.OBJECTIVES`; a custom objective is
described by the first paragraph of its Python function's docstring (units as that text says).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matsearch.objectives import OBJECTIVES
from matsearch.spec import Objective

DIRECTION_WORDS = {"min": "minimise", "max": "maximise"}


@dataclass(frozen=True)
class Goal:
    """One objective of the run. `unit` is "" for custom objectives (their `meaning` says it)."""

    name: str
    unit: str
    meaning: str
    direction: str | None = "min"  # "min" or "max"; None when `target` is set
    target: float | None = None
    bounds: tuple[float | None, float | None] | None = None  # constraint [lower, upper]
    weight: float = 1.0


DEFAULT_GOALS = (Goal("e_above_hull", OBJECTIVES["e_above_hull"].unit, OBJECTIVES["e_above_hull"].meaning),)


def docstring_summary(function: Callable[..., Any]) -> str:
    """The first paragraph of a function's docstring on one line ("" when it has none)."""
    doc = inspect.getdoc(function) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def goals_from_objectives(
    objectives: Iterable[Objective], custom_meanings: Mapping[str, str] | None = None
) -> tuple[Goal, ...]:
    """Goals of the spec's objectives; `custom_meanings` maps a custom function's name (as in
    the spec's `custom` table) to its description, usually `docstring_summary`."""
    custom_meanings = custom_meanings or {}
    goals = []
    for objective in objectives:
        function = objective.custom_function
        if function is None:
            unit, meaning = OBJECTIVES[objective.name].unit, OBJECTIVES[objective.name].meaning
        else:
            unit = ""
            meaning = custom_meanings.get(function) or f"the user's function '{function}'"
        goals.append(
            Goal(
                objective.name,
                unit,
                meaning,
                objective.direction,
                objective.target,
                objective.bounds,
                objective.weight,
            )
        )
    return tuple(goals)


def _value(x: float, unit: str) -> str:
    return f"{x:g} {unit}".strip()


def goal_line(goal: Goal, *, weighted: bool = False) -> str:
    """One line of the prompt: name (unit), what to do with it, its bounds, what it measures."""
    name = f"{goal.name} ({goal.unit})" if goal.unit else goal.name
    if goal.target is not None:
        aim = f"as close as possible to {_value(goal.target, goal.unit)}"
    else:
        aim = DIRECTION_WORDS[goal.direction or "min"]
    parts = [f"- {name}: {aim}"]
    if goal.bounds is not None:
        low, high = goal.bounds
        if low is not None and high is not None:
            parts.append(f"must lie between {_value(low, goal.unit)} and {_value(high, goal.unit)}")
        elif low is not None:
            parts.append(f"must be at least {_value(low, goal.unit)}")
        elif high is not None:
            parts.append(f"must be at most {_value(high, goal.unit)}")
    if weighted:
        parts.append(f"weight {goal.weight:g}")
    meaning = goal.meaning.strip().rstrip(".")
    return "; ".join(parts) + f". {meaning[:1].upper()}{meaning[1:]}."


def selection_rule(goals: tuple[Goal, ...], selection: str) -> str:
    """What to do with the objectives and how they are combined, as one sentence."""
    if len(goals) == 1:
        return "do well on this objective."
    if selection == "weighted":
        return f"do well on these {len(goals)} objectives, combined in a weighted sum."
    return (
        f"do well on these {len(goals)} objectives, traded off against each other (Pareto "
        "ranking: a structure is kept when no other one is better on all of them)."
    )
