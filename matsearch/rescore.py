"""Re-relax and re-score a run's scored candidates with another model, into a new run folder.

The new run has the original spec with `mlip.model` replaced, and one candidate per scored one
(same id, generation, proposed structure, known/new marks), relaxed again from the proposed
structure so every score means what it meant in the original run. The original run is only read.
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
from matsearch.scoring.custom import apply_custom_fitness
from matsearch.scoring.objectives import apply_evaluation
from matsearch.spec import dump_spec
from matsearch.store import RunStore
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
        for index, evaluation in evaluations:
            candidate = copies[index]
            apply_evaluation(candidate, evaluation, hull)
            if candidate.status == Status.SCORED and search.fitness:
                apply_custom_fitness(candidate, search.fitness, evaluation.relax)
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
    """A fresh candidate to relax again: proposed structure, lineage and known/new marks of `c`."""
    return Candidate(
        id=c.id,
        generation=c.generation,
        origin=c.origin,
        operator=c.operator,
        parents=[p for p in c.parents if p in ids],
        structure=c.structure,
        status=Status.VALID,
        novelty=c.novelty,
        known_id=c.known_id,
        flags=list(c.flags),
        extra={
            "rescored_from": {
                "e_above_hull": c.e_above_hull,
                "energy_per_atom_ev": c.energy_per_atom,
                "scores": dict(c.scores),
                "parents": list(c.parents),
            }
        },
    )
