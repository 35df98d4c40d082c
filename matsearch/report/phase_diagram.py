"""Phase diagram of a candidate's chemical system against the run's own hull reference."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from pymatgen.analysis.phase_diagram import PDEntry, PDPlotter, PhaseDiagram

from matsearch.candidate import Candidate
from matsearch.scoring.hull import HullReference

MIN_ELEMENTS, MAX_ELEMENTS = 2, 4


def phase_diagram_candidate(scored: Sequence[Candidate]) -> Candidate | None:
    """The lowest-e_above_hull candidate whose system has 2–4 elements (a drawable diagram)."""
    drawable = [
        c
        for c in scored
        if c.relaxed is not None and MIN_ELEMENTS <= len(c.relaxed.composition.elements) <= MAX_ELEMENTS
    ]
    return min(drawable, key=lambda c: (c.e_above_hull, c.id), default=None)


def phase_diagram_figure(candidate: Candidate, hull: HullReference) -> go.Figure:
    """pymatgen's phase diagram (formation energies, eV/atom) of the candidate's system from `hull`'s
    entries, with the candidate added at its formation energy and marked by a red star whose hover
    gives its e_above_hull against `hull`. Hover on any point names its formula."""
    composition = candidate.relaxed.composition
    elements = [el.symbol for el in composition.elements]
    reference = hull.phase_diagram(elements)
    formation = candidate.scores.get("formation_energy")
    if formation is None:
        corrected = candidate.energy_per_atom + candidate.extra.get("mp2020_correction_ev_per_atom", 0.0)
        formation = hull.formation_energy_per_atom(composition, corrected)
    label = f"#{candidate.id} {composition.reduced_formula}"
    entry = PDEntry(composition, formation * composition.num_atoms, name=label)
    diagram = PhaseDiagram([*reference.all_entries, entry])
    shown = max(0.05, diagram.get_e_above_hull(entry) + 0.02)
    plotter = PDPlotter(diagram, show_unstable=shown, backend="plotly", ternary_style="2d")
    fig = plotter.get_plot(label_unstable=False)
    _, stable, unstable = plotter.pd_plot_data
    coords = next((xy for xy, e in stable.items() if e is entry), unstable.get(entry))
    summary = f"{label}: e_above_hull {candidate.e_above_hull:+.3f} eV/atom vs '{hull.name}'"
    if coords is not None:
        trace = go.Scatter3d if len(coords) == 3 else go.Scatter
        point = dict(zip("xyz", ([v] for v in coords), strict=False))
        fig.add_trace(
            trace(
                **point,
                mode="markers",
                name=summary,
                marker={"symbol": "diamond" if len(coords) == 3 else "star", "size": 18, "color": "crimson"},
                hovertext=[f"{summary}<br>formation energy {formation:.3f} eV/atom"],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=f"{'-'.join(elements)} phase diagram, hull reference '{hull.name}'<br>★ {summary}",
        title_font={"size": 14},
        showlegend=True,
        legend={"orientation": "h", "y": -0.18},
        height=620,
        margin={"t": 90},
    )
    return fig
