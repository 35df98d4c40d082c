"""Pareto figure: every relaxed candidate on the first two objectives, front labelled by formula.

Candidates lacking a score are not dropped: they are drawn as grey crosses in a band just outside
the axis range on that objective's worse side (above the data for `min`, below for `max`, beyond
the farthest from the target for `target`), so that they never look like the best, labelled
"missing", with the reason in their hover text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from matsearch.candidate import Candidate
from matsearch.report.labels import axis_title, hover_text
from matsearch.selection import minimisation_matrix, pareto_ranks
from matsearch.spec import Objective
from matsearch.summary import missing_score_reasons

MISSING_OFFSET = 0.12  # missing values are drawn this fraction of the axis span outside the data


def _values(candidates: Sequence[Candidate], name: str) -> np.ndarray:
    return np.array([c.scores.get(name, math.nan) for c in candidates], dtype=float)


def _missing_position(values: np.ndarray, objective: Objective | None) -> float:
    """Where to draw a missing value: MISSING_OFFSET of the span beyond the worst present value of
    `objective` (above the largest for `min`, below the smallest for `max`, farther from the target
    than the farthest for `target`, on that one's side). `objective` None (the generation axis):
    below the smallest."""
    present = values[np.isfinite(values)]
    if not present.size:
        return 0.0 if objective is None or objective.target is None else objective.target
    low, high = float(present.min()), float(present.max())
    offset = MISSING_OFFSET * ((high - low) or max(abs(low), abs(high), 1.0))
    if objective is None or objective.direction == "max":
        return low - offset
    if objective.target is not None:
        farthest = max((low, high), key=lambda v: abs(v - objective.target))
        return farthest + (offset if farthest >= objective.target else -offset)
    return high + offset


def _hover(c: Candidate, names: list[str]) -> str:
    reasons = missing_score_reasons(c)
    why = [f"{n} missing: {html.escape(reasons.get(n, 'not computed'))}" for n in names if n not in c.scores]
    return "<br>".join([hover_text(c, names), *why])


def pareto_figure(
    scored: Sequence[Candidate], survivors: Sequence[int], objectives: Sequence[Objective]
) -> go.Figure:
    """Relaxed candidates on the first two objectives (x, y), coloured by generation; the
    non-dominated front of the complete ones as a line with formula labels; the last survivors
    ringed; candidates missing a score as crosses in a "missing" band. With one objective, it is
    plotted against generation."""
    shown = list(objectives[:2])
    names = [o.name for o in shown]
    if len(shown) == 2:
        x, y = _values(scored, names[0]), _values(scored, names[1])
        x_title, y_title = axis_title(shown[0]), axis_title(shown[1])
        title = "Pareto front of the first two objectives"
        x_missing = _missing_position(x, shown[0])
    else:
        x = np.array([c.generation for c in scored], dtype=float)
        y = _values(scored, names[0])
        x_title, y_title = "generation", axis_title(shown[0])
        title = f"{names[0]} of every relaxed candidate"
        x_missing = _missing_position(x, None)
    y_missing = _missing_position(y, shown[-1])
    complete = np.isfinite(x) & np.isfinite(y)
    fig = go.Figure()
    idx = np.flatnonzero(complete)
    fig.add_trace(
        go.Scatter(
            x=x[idx],
            y=y[idx],
            mode="markers",
            name=f"relaxed candidates ({idx.size})",
            marker={
                "color": [scored[i].generation for i in idx],
                "colorscale": "Viridis",
                "size": 9,
                "colorbar": {"title": "generation", "dtick": 1},
                "showscale": bool(idx.size),
            },
            hovertext=[_hover(scored[i], names) for i in idx],
            hoverinfo="text",
        )
    )
    survivor_set = set(survivors)
    ring = [i for i, c in enumerate(scored) if c.id in survivor_set]
    if ring:  # at their drawn place, also when it is the 'missing' band
        fig.add_trace(
            go.Scatter(
                x=np.where(np.isfinite(x), x, x_missing)[ring],
                y=np.where(np.isfinite(y), y, y_missing)[ring],
                mode="markers",
                name=f"survivors, last generation ({len(ring)})",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "crimson", "width": 2}},
                hoverinfo="skip",
            )
        )
    if len(shown) == 2 and idx.size:
        kept = [scored[i] for i in idx]
        ranks, _ = pareto_ranks(minimisation_matrix(kept, shown))
        front = idx[ranks == 0]
        front = front[np.argsort(x[front])]
        fig.add_trace(
            go.Scatter(
                x=x[front],
                y=y[front],
                mode="lines+markers+text",
                name=f"Pareto front ({front.size})",
                text=[f"#{scored[i].id} {scored[i].formula}" for i in front],
                textposition="top center",
                textfont={"size": 11},
                line={"color": "black", "width": 1.5},
                marker={"symbol": "diamond", "size": 7, "color": "black"},
                hovertext=[_hover(scored[i], names) for i in front],
                hoverinfo="text",
            )
        )
    _add_missing(fig, scored, (x, x_missing), (y, y_missing), names, complete)
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "r": 20},
        height=560,
    )
    if len(shown) == 1:
        fig.update_xaxes(dtick=1)
    return fig


def _add_missing(
    fig: go.Figure,
    scored: Sequence[Candidate],
    x_axis: tuple[np.ndarray, float],
    y_axis: tuple[np.ndarray, float],
    names: list[str],
    complete: np.ndarray,
) -> None:
    """Candidates lacking a score, as grey crosses at the 'missing' position of that axis (values
    and missing position of each axis)."""
    lacking = np.flatnonzero(~complete)
    if not lacking.size:
        return
    (x, x_missing), (y, y_missing) = x_axis, y_axis
    xs = np.where(np.isfinite(x[lacking]), x[lacking], x_missing)
    ys = np.where(np.isfinite(y[lacking]), y[lacking], y_missing)
    which = sorted({n for i in lacking for n in names if n not in scored[i].scores})
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+text",
            name=f"missing {' or '.join(which)} ({lacking.size}), drawn at 'missing'",
            text=[scored[i].formula for i in lacking],
            textposition="middle right",
            textfont={"size": 9, "color": "grey"},
            marker={"symbol": "x", "size": 9, "color": "grey"},
            hovertext=[_hover(scored[i], names) for i in lacking],
            hoverinfo="text",
        )
    )
    if not np.isfinite(y[lacking]).all():
        fig.add_hline(y=y_missing, line={"dash": "dot", "color": "grey"}, annotation_text="missing")
    if not np.isfinite(x[lacking]).all():
        fig.add_vline(x=x_missing, line={"dash": "dot", "color": "grey"}, annotation_text="missing")
