"""What the engine records about one generation: its counts (also sent as progress events) and
the metrics stored when it completes (counts, rates, novelty, S.U.N., hypervolume, best e_hull and,
for CSP, the lowest-energy structure and whether the known answer was found)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymatgen.core import Structure

from matsearch.candidate import Candidate, Status
from matsearch.scoring.csp import csp_match
from matsearch.scoring.metrics import generation_metrics, hypervolume_reference
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM
from matsearch.spec import RunSpec


def generation_counts(children: list[Candidate]) -> dict[str, int]:
    """proposed / valid / unique / relaxed / failed / metastable counts of one generation."""
    statuses = [c.status for c in children]
    after_validity = {Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE}
    unique = {Status.VALID, Status.SCORED, Status.FAILED}
    return {
        "proposed": len(children),
        "valid": sum(s in after_validity for s in statuses),
        "unique": sum(s in unique for s in statuses),
        "relaxed": statuses.count(Status.SCORED),
        "failed": statuses.count(Status.FAILED),
        "metastable": sum(
            c.status == Status.SCORED
            and c.e_above_hull is not None
            and c.e_above_hull < METASTABLE_EV_PER_ATOM
            for c in children
        ),
    }


def generation_record(
    spec: RunSpec,
    children: list[Candidate],
    survivors: list[Candidate],
    earlier: Mapping[int, dict[str, Any]],
    scored_so_far: Callable[[], list[Candidate]],
    known_structure: Structure | None,
) -> dict[str, Any]:
    """Counts, rates, novelty, S.U.N. and hypervolume of one generation (stored, shown by status).

    `earlier` holds the stored metrics of the completed generations: the hypervolume reference
    point is fixed by the first generation that has survivors and stored with every generation's
    metrics, so that hypervolumes of later generations, also after a resume, are comparable.
    `scored_so_far` reads every scored candidate of the run (called for CSP only).
    """
    reference = next((r for m in earlier.values() if (r := m.get("hypervolume_reference")) is not None), None)
    if reference is None and survivors:
        reference = hypervolume_reference(
            survivors, spec.objectives, fixed=spec.metrics.hypervolume_reference
        ).tolist()
    scored = [c.e_above_hull for c in children if c.status == Status.SCORED]
    return (
        generation_counts(children)
        | generation_metrics(
            children,
            survivors,
            spec.objectives,
            reference,
            stable_threshold=spec.metrics.stable_threshold,
            admit=spec.discovery.admit,
        )
        | {"best_e_above_hull": min(scored) if scored else None, "hypervolume_reference": reference}
        | (csp_record(scored_so_far(), known_structure) if spec.task.kind == "csp" else {})
    )


def csp_record(scored: list[Candidate], known_structure: Structure | None) -> dict[str, Any]:
    """Lowest-energy structure so far and, with a known answer, whether and how well it was found."""
    if not scored:
        return {}
    lowest = min(scored, key=lambda c: (c.energy_per_atom, c.id))
    record: dict[str, Any] = {
        "csp_lowest_id": lowest.id,
        "csp_lowest_energy_per_atom": lowest.energy_per_atom,
    }
    if known_structure is not None:
        match = csp_match(known_structure, scored)
        record |= {"csp_lowest_matches_known": match is not None and match[0] == lowest.id}
        record |= {"csp_match_id": None if match is None else match[0]}
        record |= {"csp_match_rmsd": None if match is None else match[1]}
    return record
