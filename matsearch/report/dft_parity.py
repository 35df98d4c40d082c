"""MLIP against DFT for the ingested candidates: e_above_hull parity plot (eV/atom)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from matsearch.candidate import Candidate


def dft_parity_figure(candidates: dict[int, Candidate], views: dict[int, dict[str, Any]]) -> go.Figure | str:
    """MLIP e_hull (y) against DFT e_hull (x) for every comparable ingested candidate, with y = x;
    or why it cannot be drawn."""
    points = [(cid, v) for cid, v in views.items() if v["e_above_hull_ev_per_atom"] is not None]
    points = [(cid, v) for cid, v in points if candidates[cid].e_above_hull is not None]
    if not points:
        return "no ingested DFT result on the run's hull yet (`matsearch ingest RUN PATH...`)"
    x = [v["e_above_hull_ev_per_atom"] for _, v in points]
    y = [candidates[cid].e_above_hull for cid, _ in points]
    labels = [
        f"#{cid} {candidates[cid].formula}<br>DFT {v['stability']}, MLIP {v['mlip_stability']}"
        f"<br>MLIP − DFT {v['mlip_minus_dft_e_hull_ev_per_atom']:+.3f} eV/atom"
        for cid, v in points
    ]
    low, high = min(x + y + [0.0]) - 0.05, max(x + y + [0.0]) + 0.05
    fig = go.Figure(
        [
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                line={"color": "grey", "dash": "dash"},
                name="y = x",
            ),
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                marker={"size": 9, "color": ["seagreen" if v["confirmed"] else "crimson" for _, v in points]},
                text=labels,
                hovertemplate="%{text}<extra></extra>",
                name="candidates (green: stability confirmed)",
            ),
        ]
    )
    fig.update_layout(
        title=f"MLIP vs DFT energy above hull, {len(points)} ingested candidates",
        xaxis_title="DFT e_above_hull (eV/atom, MP2020)",
        yaxis_title="MLIP e_above_hull (eV/atom)",
        height=460,
    )
    return fig
