"""Lineage: the best relaxed children with their ancestors, one row per generation, edges
labelled by the operator that made the child."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from matsearch.candidate import Candidate
from matsearch.report.labels import hover_text

MAX_NODES = 40
N_ROOTS = 3  # best children whose ancestry is drawn


def lineage_roots(scored: Sequence[Candidate], n: int = N_ROOTS) -> list[Candidate]:
    """The `n` lowest-e_above_hull candidates that have parents (children of an operator)."""
    children = sorted((c for c in scored if c.parents), key=lambda c: (c.e_above_hull, c.id))
    return children[:n]


def ancestry(roots: Sequence[Candidate], by_id: dict[int, Candidate]) -> list[int]:
    """Ids of the roots and their ancestors, breadth first, at most MAX_NODES."""
    nodes: list[int] = []
    queue = [c.id for c in roots]
    while queue and len(nodes) < MAX_NODES:
        cid = queue.pop(0)
        if cid in nodes or cid not in by_id:
            continue
        nodes.append(cid)
        queue.extend(by_id[cid].parents)
    return nodes


def _node_label(c: Candidate) -> str:
    seed = c.extra.get("material_id")
    made = f"seed {seed}" if seed else f"{c.origin}/{c.operator}"
    e_hull = "—" if c.e_above_hull is None else f"{c.e_above_hull:.3f}"
    return f"#{c.id} {c.formula}<br>{made}<br>e_hull {e_hull} eV/atom"


def lineage_figure(roots: Sequence[Candidate], by_id: dict[int, Candidate]) -> go.Figure:
    """Roots (ringed red) and ancestors as labelled boxes by generation, oldest at the top; an arrow
    runs from each parent to its child, labelled with the child's operator."""
    nodes = ancestry(roots, by_id)
    rows: dict[int, list[int]] = {}
    for cid in nodes:
        rows.setdefault(by_id[cid].generation, []).append(cid)
    generations = sorted(rows)
    position = {}
    for g in generations:
        row = sorted(rows[g])
        for k, cid in enumerate(row):
            position[cid] = (k - (len(row) - 1) / 2, -g)
    fig = go.Figure()
    for cid in nodes:
        child = by_id[cid]
        for parent in child.parents:
            if parent not in position:
                continue
            (x0, y0), (x1, y1) = position[parent], position[cid]
            fig.add_annotation(
                x=x1, y=y1 + 0.22, ax=x0, ay=y0 - 0.22, xref="x", yref="y", axref="x", ayref="y",
                showarrow=True, arrowhead=2, arrowwidth=1.4, arrowcolor="grey", text="",
            )  # fmt: skip
            fig.add_annotation(
                x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=child.operator, showarrow=False,
                font={"color": "darkblue", "size": 11}, bgcolor="white",
            )  # fmt: skip
    root_ids = {c.id for c in roots}
    for cid, (x, y) in position.items():
        root = cid in root_ids
        fig.add_annotation(
            x=x, y=y, text=_node_label(by_id[cid]), showarrow=False, font={"size": 10},
            bgcolor="mistyrose" if root else "whitesmoke", bordercolor="crimson" if root else "grey",
            borderwidth=1.5, borderpad=4, hovertext=hover_text(by_id[cid], ["e_above_hull"]),
        )  # fmt: skip
    fig.add_trace(  # invisible anchors, so that the axes span every box
        go.Scatter(
            x=[p[0] for p in position.values()],
            y=[p[1] for p in position.values()],
            mode="markers",
            marker={"size": 1, "opacity": 0},
            hoverinfo="skip",
            name="candidates",
        )
    )
    missing = len({p for cid in nodes for p in by_id[cid].parents} - set(position))
    more = f" ({missing} older ancestors not drawn)" if missing else ""
    xs = [p[0] for p in position.values()] or [0.0]
    width = max(xs) - min(xs)
    fig.update_layout(
        title=f"Lineage of the best {len(roots)} {'child' if len(roots) == 1 else 'children'} (red) and "
        f"their ancestors{more}<br>arrows run from parent to child, labelled with the child's operator",
        showlegend=False,
        height=max(320, 150 * len(generations) + 120),
        width=max(700, int(190 * (width + 1.6))),
        xaxis={"visible": False, "range": [min(xs) - 0.8, max(xs) + 0.8]},
        yaxis={
            "range": [-max(generations) - 0.6, -min(generations) + 0.6],
            "tickvals": [-g for g in generations],
            "ticktext": [f"gen {g}" for g in generations],
            "zeroline": False,
        },
        plot_bgcolor="white",
    )
    return fig
