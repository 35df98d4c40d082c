"""Figures over generations: each objective's best so far and best this generation; CSP energies."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from matsearch.candidate import Status
from matsearch.report.labels import axis_title, hover_text
from matsearch.report.snapshot import RunSnapshot
from matsearch.summary import best_value


def objectives_figure(snapshot: RunSnapshot) -> go.Figure:
    """Per objective (one panel each): the best value so far (every relaxed candidate up to that
    generation), the best this generation (its relaxed children) and the survivors' median."""
    objectives = snapshot.spec.objectives
    scored = [c for c in snapshot.candidates if c.status == Status.SCORED]
    generations = sorted({c.generation for c in snapshot.candidates})
    by_id = snapshot.by_id()
    fig = make_subplots(rows=len(objectives), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, objective in enumerate(objectives, start=1):
        name = objective.name
        so_far = [
            best_value([c.scores.get(name) for c in scored if c.generation <= g], objective)
            for g in generations
        ]
        this = [
            best_value([c.scores.get(name) for c in scored if c.generation == g], objective)
            for g in generations
        ]
        median = []
        for g in generations:
            values = sorted(
                v for i in snapshot.populations.get(g, []) if (v := by_id[i].scores.get(name)) is not None
            )
            median.append(values[len(values) // 2] if values else None)
        series = (
            ("best so far", so_far, "solid", "circle"),
            ("best this generation", this, "dash", "square"),
            ("survivors: median", median, "dot", "triangle-up"),
        )
        for label, values, dash, symbol in series:
            fig.add_trace(
                go.Scatter(
                    x=generations,
                    y=values,
                    mode="lines+markers",
                    name=f"{name}: {label}",
                    line={"dash": dash},
                    marker={"symbol": symbol},
                    legendgroup=name,
                    legendgrouptitle_text=name if label == "best so far" else None,
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text=axis_title(objective), title_font={"size": 11}, row=row, col=1)
    fig.update_xaxes(title_text="generation", dtick=1, row=len(objectives), col=1)
    fig.update_layout(title="Objectives per generation", height=260 * len(objectives) + 140)
    return fig


def csp_figure(snapshot: RunSnapshot) -> go.Figure:
    """Energy per atom (eV/atom) of every relaxed structure per generation, the lowest so far, and
    the candidate matching the known structure (as the engine recorded it), if any."""
    scored = [c for c in snapshot.candidates if c.status == Status.SCORED and c.energy_per_atom is not None]
    generations = sorted({c.generation for c in scored})
    names = ["energy_per_atom", "e_above_hull"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[c.generation for c in scored],
            y=[c.energy_per_atom for c in scored],
            mode="markers",
            name=f"relaxed structures ({len(scored)})",
            marker={"color": "steelblue", "size": 8, "opacity": 0.7},
            hovertext=[hover_text(c, names) for c in scored],
            hoverinfo="text",
        )
    )
    lowest = [min(c.energy_per_atom for c in scored if c.generation <= g) for g in generations]
    fig.add_trace(go.Scatter(x=generations, y=lowest, mode="lines+markers", name="lowest so far"))
    last = snapshot.metrics[max(snapshot.metrics)] if snapshot.metrics else {}
    match = next((c for c in scored if c.id == last.get("csp_match_id")), None)
    if match is not None:
        fig.add_trace(
            go.Scatter(
                x=[match.generation],
                y=[match.energy_per_atom],
                mode="markers+text",
                name=f"matches the known structure (RMSD {last['csp_match_rmsd']:.3f})",
                text=[f"#{match.id} {match.formula} = known"],
                textposition="top right",
                marker={"symbol": "star", "size": 18, "color": "crimson"},
                hovertext=[hover_text(match, names)],
                hoverinfo="text",
            )
        )
    target = snapshot.spec.task.target
    known = "" if snapshot.spec.task.known_structure is not None else " (no known structure given)"
    found = "" if match is not None or known else "; known structure not found"
    fig.update_layout(
        title=f"CSP of {target}: energy per generation{known}{found}",
        xaxis_title="generation",
        yaxis_title="energy_per_atom (eV/atom)",
        xaxis={"dtick": 1},
        legend={"orientation": "h", "y": -0.2},
        height=480,
    )
    return fig
