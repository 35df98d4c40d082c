"""Run report: one self-contained, interactive HTML page, runs/<name>/report/report.html.

Figures (plotly; hover names each point's formula and scores with units): the Pareto front of the
first two objectives (candidates missing a score drawn in a "missing" band), objectives per
generation (best so far and best this generation), the e_above_hull histogram, the phase diagram
of the best candidate's system against the run's own hull reference, the lineage of the best
children, MLIP vs DFT e_above_hull of the ingested DFT results, and for CSP runs the energy per
generation with the known-structure match. Tables: the best candidates (space group, known id or
new, model disagreement, DFT e_hull), DFT results, generations, CSP answer, operator yields. The
plotly.js library is embedded, so the file opens offline and can be mailed or archived alone.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go

from matsearch.candidate import Status
from matsearch.dft.compare import dft_views
from matsearch.errors import DataError
from matsearch.report.dft_parity import dft_parity_figure
from matsearch.report.ehull import e_hull_figure
from matsearch.report.generations import csp_figure, objectives_figure
from matsearch.report.labels import axis_title
from matsearch.report.lineage import lineage_figure, lineage_roots
from matsearch.report.page import FigureSection, render
from matsearch.report.pareto import pareto_figure
from matsearch.report.phase_diagram import phase_diagram_candidate, phase_diagram_figure
from matsearch.report.snapshot import RunSnapshot, load_snapshot
from matsearch.scoring.hull import HullReference
from matsearch.summary import run_summary

__all__ = ["REPORT_DIR", "RunSnapshot", "figure_sections", "load_snapshot", "make_report"]

logger = logging.getLogger(__name__)

REPORT_DIR = "report"


def make_report(run_dir: str | Path, *, hull: HullReference | None = None, top: int = 10) -> Path:
    """Write runs/<name>/report/report.html and return its path.

    `hull` saves rebuilding the run's hull reference (its spec's `reference.hull`) for the phase
    diagram; `top` is the number of best candidates listed.
    """
    run_dir = Path(run_dir)
    snapshot = load_snapshot(run_dir)
    summary = run_summary(run_dir, top)
    out_dir = run_dir / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(render(summary, figure_sections(snapshot, hull), _facts(snapshot)), encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def figure_sections(snapshot: RunSnapshot, hull: HullReference | None = None) -> list[FigureSection]:
    """Every figure the run's data allow; the others carry a note saying why not."""
    scored = snapshot.scored
    by_id = snapshot.by_id()
    roots = lineage_roots(scored)
    pd_candidate = phase_diagram_candidate(scored)
    pareto_title = "Pareto front" if len(snapshot.spec.objectives) > 1 else "Objective per candidate"
    builders: list[tuple[str, str, Callable[[], go.Figure | str]]] = [
        (
            "pareto",
            pareto_title,
            lambda: pareto_figure(scored, snapshot.last_population, snapshot.spec.objectives),
        ),
        ("objectives", "Objectives per generation", lambda: objectives_figure(snapshot)),
        ("e_hull", "Energy above hull", lambda: e_hull_figure(scored, snapshot.spec.reference.hull)),
        ("phase_diagram", "Phase diagram", lambda: _phase_diagram(snapshot, pd_candidate, hull)),
        ("lineage", "Lineage of the best children", lambda: _lineage(roots, by_id)),
    ]
    if snapshot.dft_results:  # only once DFT results are ingested
        views = dft_views(snapshot.candidates, snapshot.dft_results)
        builders.append(("dft_parity", "MLIP vs DFT", lambda: dft_parity_figure(by_id, views)))
    if snapshot.spec.task.kind == "csp":
        builders.insert(
            0, ("csp", "Crystal structure prediction: energy per generation", lambda: csp_figure(snapshot))
        )
    sections = []
    for name, title, build in builders:
        if not scored:
            sections.append(FigureSection(name, title, note="no candidate has been scored yet"))
            continue
        made = build()
        if isinstance(made, str):
            sections.append(FigureSection(name, title, note=made))
        else:
            sections.append(FigureSection(name, title, figure=made))
    return sections


def _phase_diagram(snapshot: RunSnapshot, candidate, hull: HullReference | None) -> go.Figure | str:
    """The figure, or why it cannot be drawn (no 2–4 element candidate, hull reference unavailable)."""
    if candidate is None:
        return "no relaxed candidate has 2–4 elements, the systems a phase diagram is drawn for"
    if hull is None:
        try:
            hull = HullReference.named(snapshot.spec.reference.hull)
        except DataError as exc:
            return f"the run's hull reference '{snapshot.spec.reference.hull}' is not available here ({exc})"
    return phase_diagram_figure(candidate, hull)


def _lineage(roots, by_id) -> go.Figure | str:
    if not roots:
        return "no relaxed candidate has parents (all are seeds, prototypes or random structures)"
    return lineage_figure(roots, by_id)


def _facts(snapshot: RunSnapshot) -> str:
    """One escaped paragraph: objectives with units, selection, progress, statuses, hull reference."""
    spec = snapshot.spec
    statuses = {s.value: 0 for s in Status}
    for c in snapshot.candidates:
        statuses[c.status.value] += 1
    counts = ", ".join(f"{k} {v}" for k, v in statuses.items() if v)
    task = f"CSP of {spec.task.target}" if spec.task.kind == "csp" else "generate"
    text = (
        f"Task: {task}. Objectives: {'; '.join(axis_title(o) for o in spec.objectives)}. "
        f"Selection: {spec.selection}. Generations completed: {len(snapshot.populations)} of "
        f"{spec.generations + 1}. Candidates: {len(snapshot.candidates)} ({counts}). "
        f"Hull reference: {spec.reference.hull}."
    )
    return html.escape(text)
