"""Re-relax and re-score a run's scored candidates with another model, into a new run folder.

The new run has the original spec with `mlip.model` replaced, and one candidate per scored one
(same id, generation, proposed structure), relaxed again from the proposed structure so every score
means what it meant in the original run, then marked again (known vs new, artefacts, and two that
now relax into one structure: the later is its duplicate) by the engine's own steps. The original
run is only read.
Each new candidate keeps the original scores in ``extra["rescored_from"]``; parents outside the
scored set are dropped from its lineage (they are not in the new run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from matsearch.candidate import Candidate, Status
from matsearch.engine import Search
from matsearch.run import Run
from matsearch.scoring.discovery import DiscoveryMarker, mark_children
from matsearch.scoring.objectives import score_children
from matsearch.spec import dump_spec
from matsearch.store import RunStore
from matsearch.structures.dedup import DuplicateIndex
from matsearch.versions import provenance


def rescore_run(
    run_dir: Path, model: str, out: Path | None = None, *, device: str | None = None
) -> dict[str, Any]:
    """Rescore `run_dir` with `model` (name or file) into `out` (default `<run_dir>-rescored`).
    Returns {"run_dir", "rescored", "moves"}: per candidate its rank and e_hull (eV/atom) before and
    after, in the new order (failed relaxations last)."""
    run_dir = Path(run_dir)
    source = Run(run_dir)
    out = Path(out) if out is not None else run_dir.with_name(f"{run_dir.name}-rescored")
    RunStore.refuse_existing(out)
    data = yaml.safe_load(source.spec_yaml())
    data["name"], data["output"] = out.name, str(out.parent.resolve())
    model_path = Path(model)
    data["mlip"] = {
        **data.get("mlip", {}),
        "model": str(model_path.resolve()) if model_path.exists() else model,
    }
    if device is not None:
        data["mlip"]["device"] = device
    search = Search(data)
    originals = source.best()
    hull = search.hull
    meta = provenance(search.spec) | {
        "hull_reference": hull.describe(),
        "rescored_from": str(run_dir.resolve()),
    }
    ids = {c.id for c in originals}
    copies = [_copy(c, ids) for c in originals]
    last = max((c.generation for c in originals), default=0)
    store = RunStore.create(out, dump_spec(search.spec), meta)
    try:
        store.add(copies, proposed_generation=last)
        evaluations = search.executor.evaluate([c.structure for c in copies], search.properties)
        for candidate in score_children(copies, evaluations, hull, search.fitness):
            store.update([candidate])
        marker = DiscoveryMarker(search.known, search.tolerances, hull)
        for candidate in mark_children(copies, marker, DuplicateIndex(search.tolerances)):
            store.update([candidate])
        ranked = sorted(copies, key=lambda c: (c.status != Status.SCORED, c.e_above_hull or 0.0, c.id))
        scored = [c.id for c in ranked if c.status == Status.SCORED]
        store.complete_generation(last, scored, {"rescored": len(scored), "model": str(model)})
    finally:
        search.executor.close()
        store.close()
    before = {c.id: rank for rank, c in enumerate(originals, start=1)}
    moves = [
        {
            "id": c.id,
            "formula": c.formula,
            "rank_before": before[c.id],
            "rank_after": rank,
            "e_hull_before": c.extra["rescored_from"]["e_above_hull"],
            "e_hull_after": c.e_above_hull if c.status == Status.SCORED else None,
        }
        for rank, c in enumerate(ranked, start=1)
    ]
    return {"run_dir": str(out), "rescored": len(scored), "moves": moves}


def _copy(c: Candidate, ids: set[int]) -> Candidate:
    """A fresh candidate to relax again: the proposed structure and lineage of `c`."""
    return Candidate(
        id=c.id,
        generation=c.generation,
        origin=c.origin,
        operator=c.operator,
        parents=[p for p in c.parents if p in ids],
        structure=c.structure,
        status=Status.VALID,
        extra={
            "rescored_from": {
                "e_above_hull": c.e_above_hull,
                "energy_per_atom_ev": c.energy_per_atom,
                "scores": dict(c.scores),
                "parents": list(c.parents),
            }
        },
    )
