"""Everything the report reads from a run folder, loaded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matsearch.candidate import Candidate, Status
from matsearch.run import Run
from matsearch.spec import RunSpec
from matsearch.store import RunStore


@dataclass
class RunSnapshot:
    """Spec, candidates, survivors and stored metrics of a run."""

    spec: RunSpec
    candidates: list[Candidate]
    populations: dict[int, list[int]]  # generation -> survivor ids, best first
    metrics: dict[int, dict[str, Any]]  # generation -> stored metrics
    dft_results: list[dict[str, Any]] = field(default_factory=list)  # ingested DFT (RunStore.dft_results)

    @property
    def scored(self) -> list[Candidate]:
        """Relaxed candidates with an energy above hull (eV/atom)."""
        return [c for c in self.candidates if c.status == Status.SCORED and c.e_above_hull is not None]

    @property
    def last_population(self) -> list[int]:
        return self.populations[max(self.populations)] if self.populations else []

    def by_id(self) -> dict[int, Candidate]:
        return {c.id: c for c in self.candidates}


def load_snapshot(run_dir: str | Path) -> RunSnapshot:
    """Read spec, candidates, populations and metrics of a run without locking it. The spec is
    the stored one (`Run.spec`): files it names need not exist here."""
    run_dir = Path(run_dir)
    spec = Run(run_dir).spec()
    with RunStore.open(run_dir, lock=False) as store:
        completed = store.last_completed_generation()
        populations = {} if completed is None else {g: store.population(g) for g in range(completed + 1)}
        return RunSnapshot(
            spec=spec,
            candidates=store.candidates(),
            populations={g: ids for g, ids in populations.items() if ids},
            metrics=store.generation_metrics(),
            dft_results=store.dft_results(),
        )
