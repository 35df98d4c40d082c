"""Histogram of the energy above hull (eV/atom) of every relaxed candidate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from matsearch.candidate import Candidate
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM

CLIP_EV_PER_ATOM = 1.0  # values above this are counted in the last bin


def e_hull_figure(scored: Sequence[Candidate], hull_name: str) -> go.Figure:
    """e_above_hull histogram with the hull (0) and metastability threshold marked."""
    values = np.array([c.e_above_hull for c in scored], dtype=float)
    overflow = int((values > CLIP_EV_PER_ATOM).sum())
    fig = go.Figure(
        go.Histogram(
            x=np.clip(values, None, CLIP_EV_PER_ATOM),
            nbinsx=30,
            marker={"color": "steelblue"},
            name="candidates",
            hovertemplate="%{x} eV/atom: %{y} candidates<extra></extra>",
        )
    )
    fig.add_vline(x=0.0, line={"color": "black"}, annotation_text="hull")
    fig.add_vline(
        x=METASTABLE_EV_PER_ATOM,
        line={"color": "crimson", "dash": "dash"},
        annotation_text=f"metastable ({METASTABLE_EV_PER_ATOM} eV/atom)",
        annotation_position="top right",
    )
    note = f"; {overflow} above {CLIP_EV_PER_ATOM:g} eV/atom in the last bin" if overflow else ""
    fig.update_layout(
        title=f"Energy above hull ({hull_name}) of {values.size} relaxed candidates{note}",
        xaxis_title="e_above_hull (eV/atom)",
        yaxis_title="candidates",
        bargap=0.05,
        height=420,
    )
    return fig
