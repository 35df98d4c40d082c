"""Run: a read-only view of a run folder, for the Python API, `status` and `export`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from matsearch.candidate import Candidate, Status
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM
from matsearch.store import RunStore


class Run:
    """The results in `runs/<name>/`. Reads the store without locking it, so it works during a run."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        RunStore.open(self.run_dir, lock=False).close()  # fail early if it is not a run folder

    def _store(self) -> RunStore:
        return RunStore.open(self.run_dir, lock=False)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per candidate: lineage, status, reason, energies (eV/atom) and every score."""
        with self._store() as store:
            return store.to_dataframe()

    def candidates(self, status: Status | None = None) -> list[Candidate]:
        with self._store() as store:
            return store.candidates(status=status)

    @property
    def last_generation(self) -> int | None:
        """The last generation whose survivors are stored (None before generation 0 finishes)."""
        with self._store() as store:
            return store.last_completed_generation()

    def population(self, generation: int | None = None) -> list[Candidate]:
        """Survivors of `generation` (default: the last completed one), best first."""
        with self._store() as store:
            if generation is None:
                generation = store.last_completed_generation()
            return [] if generation is None else store.get(store.population(generation))

    def best(self, n: int | None = None, *, max_e_above_hull: float | None = None) -> list[Candidate]:
        """Scored candidates from the whole history, lowest e_above_hull (eV/atom) first."""
        scored = [c for c in self.candidates(Status.SCORED) if c.e_above_hull is not None]
        if max_e_above_hull is not None:
            scored = [c for c in scored if c.e_above_hull <= max_e_above_hull]
        scored.sort(key=lambda c: (c.e_above_hull, c.id))
        return scored if n is None else scored[:n]

    def origin_stats(self) -> dict[str, dict[str, float]]:
        """Per proposer (origin): counts and rates of parsed, valid, unique, relaxed and metastable
        (e_above_hull < 0.1 eV/atom) children, so proposers can be compared in one run; and how
        many structures came back from repair prompts (`repaired`) and how many of those were
        valid (`repaired_valid`)."""
        stats: dict[str, dict[str, float]] = {}
        for c in self.candidates():
            row = stats.setdefault(
                c.origin,
                dict.fromkeys(
                    (
                        "proposed",
                        "parsed",
                        "valid",
                        "unique",
                        "relaxed",
                        "metastable",
                        "repaired",
                        "repaired_valid",
                    ),
                    0,
                ),
            )
            valid = c.status in (Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE)
            repaired = c.structure is not None and "repair_of" in c.extra
            row["proposed"] += 1
            row["parsed"] += c.structure is not None
            row["valid"] += valid
            row["repaired"] += repaired
            row["repaired_valid"] += repaired and valid
            row["unique"] += c.status in (Status.VALID, Status.SCORED, Status.FAILED)
            row["relaxed"] += c.status == Status.SCORED
            row["metastable"] += c.status == Status.SCORED and c.e_above_hull < METASTABLE_EV_PER_ATOM
        for row in stats.values():
            for key in ("parsed", "valid", "unique", "relaxed", "metastable"):
                row[f"{key}_rate"] = row[key] / row["proposed"]
        return stats

    def generation_metrics(self) -> dict[int, dict]:
        with self._store() as store:
            return store.generation_metrics()

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r})"
