"""Run report: PNG figures in runs/<name>/report/ and one self-contained report.html.

Figures: the Pareto front of the first two objectives (survivors marked), objectives per
generation, the e_above_hull histogram, the phase diagram of the best candidate's chemical system
(pymatgen PDPlotter, matplotlib backend) and the lineage of the best candidate. The HTML embeds
the PNGs as base64, so it can be mailed or archived alone. Rendering uses matplotlib's Agg
backend; nothing opens a window.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from matsearch.candidate import Candidate, Status
from matsearch.export import candidate_metadata
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM
from matsearch.selection import minimisation_matrix, pareto_ranks
from matsearch.spec import Objective, RunSpec, parse_spec
from matsearch.store import RunStore

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
MAX_LINEAGE_NODES = 40
_DPI = 110


@dataclass
class ReportFigure:
    """One figure of the report: its PNG file, or a note saying why it was left out."""

    name: str
    title: str
    path: Path | None = None
    note: str | None = None


@dataclass
class RunSnapshot:
    """Everything the report reads from a run folder, loaded once."""

    spec: RunSpec
    candidates: list[Candidate]
    populations: dict[int, list[int]]  # generation -> survivor ids, best first
    metrics: dict[int, dict[str, Any]]  # generation -> stored metrics
    meta: dict[str, Any]

    @property
    def scored(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == Status.SCORED and c.e_above_hull is not None]

    @property
    def last_population(self) -> list[int]:
        return self.populations[max(self.populations)] if self.populations else []

    def best(self) -> Candidate | None:
        """Lowest e_above_hull (eV/atom) over the run, ties to the lower id (as Run.best)."""
        scored = sorted(self.scored, key=lambda c: (c.e_above_hull, c.id))
        return scored[0] if scored else None


def load_snapshot(run_dir: str | Path) -> RunSnapshot:
    """Read spec, candidates, populations and metrics of a run without locking it."""
    run_dir = Path(run_dir)
    with RunStore.open(run_dir, lock=False) as store:
        data = yaml.safe_load(store.spec_yaml())
        data["output"] = str(run_dir.parent)
        completed = store.last_completed_generation()
        populations = {} if completed is None else {g: store.population(g) for g in range(completed + 1)}
        return RunSnapshot(
            spec=parse_spec(data),
            candidates=store.candidates(),
            populations={g: ids for g, ids in populations.items() if ids},
            metrics=store.generation_metrics(),
            meta=store.meta(),
        )


# --- figures ------------------------------------------------------------------------------------


def _label(objective: Objective) -> str:
    if objective.target is not None:
        return f"{objective.name} (target {objective.target:g})"
    return f"{objective.name} ({objective.direction})"


def _score_matrix(candidates: Sequence[Candidate], objectives: Sequence[Objective]) -> np.ndarray:
    return np.array(
        [[c.scores.get(o.name, np.nan) for o in objectives] for c in candidates], dtype=float
    ).reshape(len(candidates), len(objectives))


def pareto_figure(
    scored: Sequence[Candidate], survivors: Sequence[int], objectives: Sequence[Objective]
) -> Figure:
    """Scored candidates on the first two objectives, coloured by generation.

    The non-dominated front (of these two objectives) is drawn as a line and the last
    population's survivors are ringed. With one objective, it is plotted against generation.
    """
    fig = Figure(figsize=(7, 5.2))
    ax = fig.add_subplot()
    shown = objectives[:2]
    values = _score_matrix(scored, shown)
    keep = np.isfinite(values).all(axis=1)
    kept = [c for c, k in zip(scored, keep, strict=True) if k]
    values = values[keep]
    generations = np.array([c.generation for c in kept])
    if len(shown) == 2:
        x, y = values[:, 0], values[:, 1]
        ax.set_xlabel(_label(shown[0]))
        ax.set_ylabel(_label(shown[1]))
        ax.set_title("Pareto front of the first two objectives")
    else:
        x, y = generations.astype(float), values[:, 0]
        ax.set_xlabel("generation")
        ax.set_ylabel(_label(shown[0]))
        ax.set_title("Single objective per candidate")
    points = ax.scatter(x, y, c=generations, cmap="viridis", s=28, alpha=0.85, zorder=2)
    if len(kept):
        colorbar = fig.colorbar(points, ax=ax, label="generation")
        colorbar.locator = MaxNLocator(integer=True)
        colorbar.update_ticks()
    if len(shown) == 1:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    survivor_set = set(survivors)
    ring = np.array([c.id in survivor_set for c in kept], dtype=bool)
    if ring.any():
        ax.scatter(
            x[ring],
            y[ring],
            s=110,
            facecolors="none",
            edgecolors="crimson",
            linewidths=1.6,
            label=f"survivors, last generation ({int(ring.sum())})",
            zorder=3,
        )
    if len(shown) == 2 and len(kept):
        ranks, _ = pareto_ranks(minimisation_matrix(kept, shown))
        front = np.flatnonzero(ranks == 0)
        front = front[np.argsort(x[front])]
        ax.plot(x[front], y[front], "-D", color="black", lw=1.2, ms=3, label="Pareto front", zorder=4)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _best_value(values: np.ndarray, objective: Objective) -> float:
    if objective.target is not None:
        return float(values[np.argmin(np.abs(values - objective.target))])
    return float(values.max() if objective.direction == "max" else values.min())


def objectives_figure(snapshot: RunSnapshot, objectives: Sequence[Objective]) -> Figure:
    """Per generation and objective: best and median of the survivors, median of the children."""
    by_id = {c.id: c for c in snapshot.candidates}
    n = len(objectives)
    fig = Figure(figsize=(6.5, 2.6 * n + 0.6))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    generations = sorted({c.generation for c in snapshot.candidates})
    for ax, objective in zip(axes, objectives, strict=True):
        series: dict[str, list[tuple[int, float]]] = {
            "survivors: best": [],
            "survivors: median": [],
            "children: median": [],
        }
        for g in generations:
            pop = [by_id[i].scores.get(objective.name, np.nan) for i in snapshot.populations.get(g, [])]
            kids = [
                c.scores.get(objective.name, np.nan)
                for c in snapshot.candidates
                if c.generation == g and c.status == Status.SCORED
            ]
            pop_values = np.array(pop, dtype=float)
            pop_values = pop_values[np.isfinite(pop_values)]
            kid_values = np.array(kids, dtype=float)
            kid_values = kid_values[np.isfinite(kid_values)]
            if pop_values.size:
                series["survivors: best"].append((g, _best_value(pop_values, objective)))
                series["survivors: median"].append((g, float(np.median(pop_values))))
            if kid_values.size:
                series["children: median"].append((g, float(np.median(kid_values))))
        styles = {"survivors: best": "o-", "survivors: median": "s--", "children: median": "^:"}
        for name, points in series.items():
            if points:
                gx, gy = zip(*points, strict=True)
                ax.plot(gx, gy, styles[name], label=name, ms=4)
        ax.set_ylabel(_label(objective), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("generation")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Objectives per generation")
    fig.tight_layout()
    return fig


def e_hull_figure(scored: Sequence[Candidate]) -> Figure:
    """Histogram of e_above_hull (eV/atom) of every scored candidate, thresholds marked."""
    values = np.array([c.e_above_hull for c in scored], dtype=float)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    upper = min(values.max(), 1.0) if values.size else 1.0
    overflow = int((values > upper).sum())
    low = min(values.min(), 0.0) if values.size else 0.0
    ax.hist(
        np.clip(values, None, upper),
        bins=30,
        range=(low, max(upper, low + 0.05)),
        color="steelblue",
    )
    ax.axvline(0.0, color="black", lw=1, label="hull (0 eV/atom)")
    ax.axvline(
        METASTABLE_EV_PER_ATOM,
        color="crimson",
        ls="--",
        lw=1,
        label=f"metastable ({METASTABLE_EV_PER_ATOM} eV/atom)",
    )
    ax.set_xlabel("e_above_hull (eV/atom)")
    ax.set_ylabel("candidates")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    note = f"; {overflow} above {upper:g} eV/atom counted in the last bin" if overflow else ""
    ax.set_title(f"Energy above hull of {values.size} scored candidates{note}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def phase_diagram_figure(candidate: Candidate, hull: Any) -> Figure:
    """Phase diagram (formation energies, eV/atom) of the candidate's chemical system, with it.

    `hull` is a matsearch.scoring.hull.HullReference. The candidate is added as an entry at its
    formation energy (so a candidate below the known hull becomes a vertex of the drawn hull)
    and marked with a red star; its legend gives its e_above_hull against the reference.
    Needs 2–4 elements.
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PDPlotter, PhaseDiagram

    plt = _pyplot()
    composition = candidate.relaxed.composition
    elements = [el.symbol for el in composition.elements]
    reference = hull.phase_diagram(elements)
    formation = candidate.scores.get("formation_energy")
    if formation is None:
        formation = hull.formation_energy_per_atom(composition, candidate.energy_per_atom)
    label = f"#{candidate.id} {composition.reduced_formula}"
    entry = PDEntry(composition, formation * composition.num_atoms, name=label)
    diagram = PhaseDiagram([*reference.all_entries, entry])
    e_hull = candidate.e_above_hull if candidate.e_above_hull is not None else math.nan
    shown = max(0.05, diagram.get_e_above_hull(entry) + 0.02)
    plotter = PDPlotter(diagram, show_unstable=shown, backend="matplotlib")
    ax = plotter.get_plot(label_unstable=False)
    fig = ax.figure
    _, stable, unstable = plotter.pd_plot_data
    coords = next((xy for xy, e in stable.items() if e is entry), unstable.get(entry))
    summary = f"{label}: e_above_hull {e_hull:+.3f} eV/atom vs '{hull.name}'"
    if coords is not None:
        ax.plot(*coords, marker="*", color="crimson", ms=22, ls="none", zorder=10, label=summary)
    ax.set_title(
        f"{'-'.join(elements)} phase diagram ({hull.name})\n★ best candidate {summary}",
        fontsize=14,
    )
    plt.close(fig)  # keep it out of pyplot's figure manager; it is saved through the Figure
    return fig


def lineage_figure(best: Candidate, by_id: dict[int, Candidate]) -> Figure:
    """Ancestors of `best` by generation (oldest at the top); edges carry the child's operator."""
    nodes: list[int] = []
    queue = [best.id]
    while queue and len(nodes) < MAX_LINEAGE_NODES:
        cid = queue.pop(0)
        if cid in nodes or cid not in by_id:
            continue
        nodes.append(cid)
        queue.extend(by_id[cid].parents)
    rows: dict[int, list[int]] = {}
    for cid in nodes:
        rows.setdefault(by_id[cid].generation, []).append(cid)
    generations = sorted(rows)
    width = max(len(r) for r in rows.values())
    fig = Figure(figsize=(max(6.0, 2.2 * width), max(3.0, 1.5 * len(generations) + 1)))
    ax = fig.add_subplot()
    position = {}
    for level, g in enumerate(generations):
        row = sorted(rows[g])
        for k, cid in enumerate(row):
            position[cid] = (k - (len(row) - 1) / 2, -level)
    for cid in nodes:
        child = by_id[cid]
        for parent in child.parents:
            if parent not in position:
                continue
            (x0, y0), (x1, y1) = position[parent], position[cid]
            ax.annotate(
                "",
                xy=(x1, y1 + 0.18),
                xytext=(x0, y0 - 0.18),
                arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 1.2},
            )
            ax.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                child.operator,
                fontsize=8,
                color="darkblue",
                ha="center",
                va="center",
                backgroundcolor="white",
            )
    for cid, (x, y) in position.items():
        c = by_id[cid]
        e_hull = "—" if c.e_above_hull is None else f"{c.e_above_hull:.3f}"
        seed = c.extra.get("material_id")
        origin = f"{c.operator} ({seed})" if seed else f"{c.origin}/{c.operator}"
        text = f"#{cid} {c.formula}\ngen {c.generation} · {origin}\ne_hull {e_hull}"
        colour = "mistyrose" if cid == best.id else "whitesmoke"
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": colour, "edgecolor": "0.5"},
        )
    missing = len({p for cid in nodes for p in by_id[cid].parents} - set(position))
    more = f" ({missing} older ancestors not drawn)" if missing else ""
    ax.set_title(f"Lineage of the best candidate #{best.id}{more}", fontsize=10)
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(-len(generations) + 0.5, 0.5)
    ax.set_yticks([-k for k in range(len(generations))], [f"gen {g}" for g in generations])
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def _pyplot() -> Any:
    """pyplot for pymatgen's plots, on the Agg backend unless the program already chose one."""
    import matplotlib

    if matplotlib.get_backend(auto_select=False) is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- report -------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=_DPI, format="png", bbox_inches="tight")


def _build_hull(spec: RunSpec) -> Any:
    from matsearch.scoring.hull import HullReference

    return HullReference.named(spec.reference.hull)


def make_figures(snapshot: RunSnapshot, out_dir: Path, hull: Any | None = None) -> list[ReportFigure]:
    """Write every figure that the run's data allow to `out_dir`; the others get a note."""
    out_dir.mkdir(parents=True, exist_ok=True)
    objectives = snapshot.spec.objectives
    scored = snapshot.scored
    best = snapshot.best()
    figures = [
        ReportFigure("pareto", "Pareto front"),
        ReportFigure("objectives", "Objectives per generation"),
        ReportFigure("e_hull", "Energy above hull"),
        ReportFigure("phase_diagram", "Phase diagram of the best candidate"),
        ReportFigure("lineage", "Lineage of the best candidate"),
    ]
    builders = {
        "pareto": lambda: pareto_figure(scored, snapshot.last_population, objectives),
        "objectives": lambda: objectives_figure(snapshot, objectives),
        "e_hull": lambda: e_hull_figure(scored),
        "phase_diagram": lambda: phase_diagram_figure(best, hull or _build_hull(snapshot.spec)),
        "lineage": lambda: lineage_figure(best, {c.id: c for c in snapshot.candidates}),
    }
    for figure in figures:
        figure.note = _missing(figure.name, snapshot, best)
        if figure.note is not None:
            continue
        try:
            fig = builders[figure.name]()
        except Exception as exc:  # one broken figure must not cost the whole report
            logger.warning("report figure %s failed: %s", figure.name, exc, exc_info=True)
            figure.note = f"this figure could not be drawn ({type(exc).__name__}: {exc})"
            continue
        figure.path = out_dir / f"{figure.name}.png"
        _save(fig, figure.path)
    return figures


def _missing(name: str, snapshot: RunSnapshot, best: Candidate | None) -> str | None:
    """Why figure `name` cannot be drawn for this run, or None."""
    if not snapshot.scored:
        return "no candidate has been scored yet"
    if name == "phase_diagram":
        n_elements = len(best.relaxed.composition.elements)
        if not 2 <= n_elements <= 4:
            return (
                f"the best candidate {best.formula} has {n_elements} element(s); phase diagrams "
                "are drawn for 2–4 elements"
            )
    return None


def make_report(run_dir: str | Path, *, hull: Any | None = None, top: int = 10) -> Path:
    """Write runs/<name>/report/*.png and report.html (PNGs embedded); returns the HTML path.

    `hull` (a HullReference) saves rebuilding the run's hull reference for the phase diagram;
    `top` is the number of best candidates listed.
    """
    run_dir = Path(run_dir)
    snapshot = load_snapshot(run_dir)
    out_dir = run_dir / REPORT_DIR
    figures = make_figures(snapshot, out_dir, hull)
    path = out_dir / "report.html"
    path.write_text(_html(snapshot, figures, top), encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape("—" if value is None else str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(snapshot: RunSnapshot, figures: list[ReportFigure], top: int) -> str:
    spec = snapshot.spec
    statuses = {s.value: 0 for s in Status}
    for c in snapshot.candidates:
        statuses[c.status.value] += 1
    best = sorted(snapshot.scored, key=lambda c: (c.e_above_hull, c.id))[:top]
    score_names = [o.name for o in spec.objectives]
    best_rows = []
    for c in best:
        meta = candidate_metadata(c)
        row = {k: meta[k] for k in ("id", "formula", "generation", "origin", "operator")}
        row |= {"e_above_hull (eV/atom)": c.e_above_hull, "converged": c.converged}
        row |= {"known as": c.known_id or (c.novelty or "—").replace("_", " "), "flags": ", ".join(c.flags)}
        row |= {name: c.scores.get(name) for name in score_names if name != "e_above_hull"}
        best_rows.append(row)
    best_columns = list(best_rows[0]) if best_rows else ["id"]
    metric_rows = [{"generation": g} | m for g, m in sorted(snapshot.metrics.items())]
    metric_columns = list(dict.fromkeys(k for row in metric_rows for k in row)) or ["generation"]
    sections = []
    for figure in figures:
        if figure.path is not None:
            data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
            body = f'<img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
        else:
            body = f'<p class="note">Not drawn: {html.escape(figure.note or "")}.</p>'
        sections.append(f"<section><h2>{html.escape(figure.title)}</h2>{body}</section>")
    objectives = ", ".join(html.escape(_label(o)) for o in spec.objectives)
    counts = ", ".join(f"{k} {v}" for k, v in statuses.items() if v)
    reference = html.escape(str(snapshot.meta.get("hull_reference", spec.reference.hull)))
    name = html.escape(spec.name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>matsearch report: {name}</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f2f2f2; }}
img {{ max-width: 100%; }}
.note {{ color: #a33; }}
</style></head><body>
<h1>matsearch report: {name}</h1>
<p>Objectives: {objectives}. Selection: {html.escape(spec.selection)}. Generations completed:
{len(snapshot.populations)} of {spec.generations + 1}. Candidates: {len(snapshot.candidates)}
({html.escape(counts)}). Hull reference: {reference}.</p>
<h2>Best {len(best_rows)} candidates (lowest e_above_hull)</h2>
{_table(best_rows, best_columns)}
<h2>Generation metrics</h2>
{_table(metric_rows, metric_columns)}
{"".join(sections)}
</body></html>
"""
