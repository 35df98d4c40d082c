"""The status of a run as one JSON-ready dict: what `matsearch status` prints and `--json` writes.

Its layout is the JSON Schema `matsearch/schemas/status.schema.json`. Every key appears once;
each score's unit is given once, in `scores`, and candidate scores are in that unit (eV/atom for
energies, GPa for the bulk modulus, a custom function's own unit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from matsearch.candidate import Candidate, Status
from matsearch.dft.compare import dft_summary, dft_views
from matsearch.display import score_unit
from matsearch.objectives import CUSTOM_PREFIX, OBJECTIVES
from matsearch.run import Run
from matsearch.spec import Objective, Task
from matsearch.structures.symmetry import space_group
from matsearch.uncertainty import uncertainty_view

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "status.schema.json"

# stored generation metric -> status key (the stored names repeat some counts under two names)
_COUNTS = {
    "proposed": "proposed",
    "valid": "valid",
    "unique": "unique",
    "relaxed": "relaxed",
    "failed": "failed",
    "metastable": "metastable",
    "n_relaxed_duplicates": "relaxed_duplicates",
    "n_known": "known",
    "n_novel": "new",
    "n_artefacts": "artefacts",
    "n_sun": "sun",
}
_RATES = {
    "validity_rate": "validity",
    "uniqueness_rate": "uniqueness",
    "novelty_rate": "novelty",
    "sun_rate": "sun",
    "rate_e_hull_le_0": "e_hull_le_0",
    "rate_e_hull_le_0.03": "e_hull_le_0.03",
    "rate_e_hull_le_0.1": "e_hull_le_0.1",
}


def run_summary(run_dir: str | Path, top: int | None = 50) -> dict[str, Any]:
    """Status of the run in `run_dir` (also while it runs): scores with units, generations with the
    best value of each objective this generation and so far, the CSP answer, proposer and operator
    yields, the `top` lowest-e_above_hull relaxed candidates with space group, known id, ingested
    DFT result and model disagreement, and the summary of the ingested DFT results."""
    run = Run(run_dir)
    spec = run.spec()
    candidates = run.candidates()
    listed = run.best(top)
    results = run.dft_results()
    views = dft_views(candidates, results)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_dir": str(run_dir),
        "name": spec.name,
        "task": {"kind": spec.task.kind, "target": spec.task.target},
        "hull_reference": run.meta().get("hull_reference"),
        "last_generation": run.last_generation,
        "scores": score_columns(spec.objectives, listed),
        "generations": generation_rows(run, candidates, spec.objectives),
        "csp": csp_section(run, candidates, spec.task) if spec.task.kind == "csp" else None,
        "proposers": run.origin_stats(),
        "operators": run.operator_stats(),
        "dft": dft_summary(views, len(results)),
        "candidates": [candidate_row(c) | {"dft": views.get(c.id)} for c in listed],
    }


def score_columns(objectives: Sequence[Objective], listed: Sequence[Candidate]) -> list[dict[str, Any]]:
    """The objectives (in spec order), then e_above_hull and custom scores the listed candidates carry."""
    columns = [
        {
            "name": o.name,
            "unit": score_unit(o.name),
            "objective": True,
            "direction": o.direction,
            "target": o.target,
            "bounds": list(o.bounds) if o.bounds else None,
        }
        for o in objectives
    ]
    names = {c["name"] for c in columns}
    extra = ["e_above_hull", *sorted({k for c in listed for k in c.scores if k.startswith(CUSTOM_PREFIX)})]
    for name in extra:
        if name not in names:
            columns.append(
                {
                    "name": name,
                    "unit": score_unit(name),
                    "objective": False,
                    "direction": None,
                    "target": None,
                    "bounds": None,
                }
            )
    return columns


def best_value(values: Sequence[float | None], objective: Objective) -> float | None:
    """The best of `values` for `objective` (lowest, highest, or closest to its target); None if empty."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    if objective.target is not None:
        return min(finite, key=lambda v: abs(v - objective.target))
    return max(finite) if objective.direction == "max" else min(finite)


def generation_rows(run: Run, candidates: Sequence[Candidate], objectives: Sequence[Objective]) -> list[dict]:
    """Per generation: counts, rates, hypervolume and, per objective, the best value among this
    generation's relaxed children and among every relaxed candidate up to it (best so far)."""
    metrics = run.generation_metrics()
    live = run.yield_stats(lambda c: str(c.generation))
    scored = [c for c in candidates if c.status == Status.SCORED]
    generations = sorted({c.generation for c in candidates} | set(metrics))
    rows = []
    for g in generations:
        stored = metrics.get(g)
        source = stored if stored is not None else live.get(str(g), {})
        this = [c for c in scored if c.generation == g]
        so_far = [c for c in scored if c.generation <= g]
        rows.append(
            {
                "generation": g,
                "completed": stored is not None,
                "counts": {key: _int_or_none(source.get(name)) for name, key in _COUNTS.items()},
                "rates": {key: (stored or {}).get(name) for name, key in _RATES.items()},
                "best_this_generation": {
                    o.name: best_value([c.scores.get(o.name) for c in this], o) for o in objectives
                },
                "best_so_far": {
                    o.name: best_value([c.scores.get(o.name) for c in so_far], o) for o in objectives
                },
                "hypervolume": (stored or {}).get("hypervolume"),
                "hypervolume_reference": (stored or {}).get("hypervolume_reference"),
                "wall_time_s": (stored or {}).get("wall_time_s"),
            }
        )
    return rows


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def csp_section(run: Run, candidates: Sequence[Candidate], task: Task) -> dict[str, Any]:
    """CSP: the lowest-energy relaxed structure so far and, with `task.known_structure`, whether and
    how closely the known answer was found (as the engine recorded after each generation). RMSD is
    pymatgen's, normalised by (V/n)^(1/3), so it has no unit."""
    scored = [c for c in candidates if c.status == Status.SCORED and c.energy_per_atom is not None]
    lowest = min(scored, key=lambda c: (c.energy_per_atom, c.id), default=None)
    metrics = run.generation_metrics()
    per_generation = []
    for g in sorted({c.generation for c in scored} | set(metrics)):
        this = [c.energy_per_atom for c in scored if c.generation == g]
        so_far = [c.energy_per_atom for c in scored if c.generation <= g]
        stored = metrics.get(g, {})
        per_generation.append(
            {
                "generation": g,
                "lowest_this_generation_ev_per_atom": min(this, default=None),
                "lowest_so_far_ev_per_atom": min(so_far, default=None),
                "match_id": stored.get("csp_match_id"),
                "match_rmsd": stored.get("csp_match_rmsd"),
            }
        )
    known = task.known_structure
    last = metrics[max(metrics)] if metrics else {}
    match = None
    if known is not None:
        match_id = last.get("csp_match_id")
        found = next((c for c in scored if c.id == match_id), None)
        match = {
            "found": match_id is not None,
            "id": match_id,
            "generation": None if found is None else found.generation,
            "rmsd": last.get("csp_match_rmsd"),
            "lowest_is_match": bool(last.get("csp_lowest_matches_known", False)),
        }
    by_id = {c.id: c for c in candidates}
    return {
        "target": task.target,
        "known_structure": None if known is None else str(known),
        "lowest": None if lowest is None else _lowest(lowest) | {"template": template_of(lowest, by_id)},
        "match": match,
        "per_generation": per_generation,
        "templates": [
            {
                "id": c.id,
                "generation": c.generation,
                "status": str(c.status),
                "template_id": c.extra["template_id"],
                "template_formula": c.extra["template_formula"],
            }
            for c in candidates
            if "template_id" in c.extra
        ],
    }


def template_of(candidate: Candidate, by_id: dict[int | None, Candidate]) -> dict[str, Any] | None:
    """The template seed `candidate` is or descends from (nearest first through its parents):
    {"seed_id", "template_id", "template_formula"}; None when no ancestor came from a template."""
    queue, seen = [candidate], {candidate.id}
    while queue:
        c = queue.pop(0)
        if "template_id" in c.extra:
            return {
                "seed_id": c.id,
                "template_id": c.extra["template_id"],
                "template_formula": c.extra["template_formula"],
            }
        for parent in c.parents:
            if parent in by_id and parent not in seen:
                seen.add(parent)
                queue.append(by_id[parent])
    return None


def _space_group(structure: Structure | None) -> dict[str, Any] | None:
    """{"symbol", "number"} of the relaxed cell; None without one or where spglib finds none."""
    group = None if structure is None else space_group(structure)
    return None if group is None else {"symbol": group.symbol, "number": group.number}


def _lowest(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "formula": c.formula,
        "generation": c.generation,
        "energy_per_atom_ev": c.energy_per_atom,
        "space_group": _space_group(c.relaxed),
    }


def candidate_row(c: Candidate) -> dict[str, Any]:
    """One relaxed candidate: lineage, space group of the relaxed cell, known id or new, scores (in
    the units of `scores`) and, for each score it lacks, why."""
    return {
        "id": c.id,
        "formula": c.formula,
        "generation": c.generation,
        "origin": c.origin,
        "operator": c.operator,
        "parents": list(c.parents),
        "space_group": _space_group(c.relaxed),
        "known_id": c.known_id,
        "novelty": None if c.novelty is None else c.novelty.value,
        "hull_entry": c.extra.get("hull_entry"),
        "flags": [flag.value for flag in c.flags],
        "converged": c.converged,
        "scores": dict(c.scores),
        "missing_scores": missing_score_reasons(c),
        "dft": None,
        "uncertainty": uncertainty_view(c),
    }


def missing_score_reasons(c: Candidate) -> dict[str, str]:
    """Why a relaxed candidate lacks a deformation energy, a score computed after relaxing (a property
    scan's error) or a custom score."""
    reasons = {}
    if "deformation_energy" not in c.scores and c.operator == "seed":
        reasons["deformation_energy"] = "a seed is a known DFT-relaxed crystal, not a proposal"
    for name in (n for n, o in OBJECTIVES.items() if o.source != "relaxation"):
        if f"{name}_error" in c.extra and name not in c.scores:
            reasons[name] = str(c.extra[f"{name}_error"])
    for name, error in (c.extra.get("custom_fitness_errors") or {}).items():
        reasons[f"{CUSTOM_PREFIX}{name}"] = str(error)
    return reasons
