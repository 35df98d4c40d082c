"""Run: a read-only view of a run folder, for the Python API, `status` and `export`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from matsearch.candidate import Candidate, Status
from matsearch.scoring.discovery import is_artefact, is_new
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM
from matsearch.spec import RunSpec, parse_spec
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

    def best(
        self, n: int | None = None, *, max_e_above_hull: float | None = None, new_only: bool = False
    ) -> list[Candidate]:
        """Scored candidates from the whole history, lowest e_above_hull (eV/atom) first. Each is
        unique after relaxation and says whether it is known (`known_id`) or new (`novelty`).

        new_only: only new materials that are not artefacts (elemental or molecular, unless the
        run's `discovery.admit` admits them).
        """
        scored = [c for c in self.candidates(Status.SCORED) if c.e_above_hull is not None]
        if max_e_above_hull is not None:
            scored = [c for c in scored if c.e_above_hull <= max_e_above_hull]
        if new_only:
            admit = self.admitted_flags()
            scored = [c for c in scored if is_new(c) and not is_artefact(c, admit)]
        scored.sort(key=lambda c: (c.e_above_hull, c.id))
        return scored if n is None else scored[:n]

    def spec_yaml(self) -> str:
        """The resolved spec the run was started with (YAML text)."""
        with self._store() as store:
            return store.spec_yaml()

    def spec(self) -> RunSpec:
        """The spec the run was started with, as stored: the one way to read a run's objectives,
        task, hull reference and settings (status, report and export all use it).

        The files it names (hull reference file, model file) are not checked again: they were
        checked when the run started, and a copied or moved run folder may no longer reach them;
        no model is loaded. Everything else is validated as usual (SpecError on a spec.yaml edited
        into an invalid one). `output` is this run's parent folder.
        """
        data = yaml.safe_load(self.spec_yaml()) or {}
        if isinstance(data, dict):
            data["output"] = str(self.run_dir.parent)
        return parse_spec(data)

    def admitted_flags(self) -> list[str]:
        """Artefact flags the run counts as discoveries (its spec's `discovery.admit`)."""
        return list(self.spec().discovery.admit)

    def origin_stats(self) -> dict[str, dict[str, float]]:
        """Per proposer (origin): the yields of `yield_stats`, so proposers can be compared."""
        return self.yield_stats(lambda c: c.origin)

    def operator_stats(self) -> dict[str, dict[str, float]]:
        """Per proposer and operator ("builtin/crossover"): the yields of `yield_stats`."""
        return self.yield_stats(lambda c: f"{c.origin}/{c.operator}")

    def yield_stats(self, key: Callable[[Candidate], str]) -> dict[str, dict[str, float]]:
        """Counts and rates (of proposed) per group: parsed, valid, unique (also after relaxation),
        relaxed, metastable (e_above_hull < 0.1 eV/atom) and metastable-new (metastable, not a known
        material, not an artefact), plus builtin children screened out before they counted and
        LLM structures that came back from repair prompts (`repaired`) and were valid
        (`repaired_valid`)."""
        admit = self.admitted_flags()
        stats: dict[str, dict[str, float]] = {}
        names = ("proposed", "parsed", "valid", "unique", "relaxed", "metastable", "metastable_new")
        for c in self.candidates():
            row = stats.setdefault(
                key(c), dict.fromkeys((*names, "screened", "repaired", "repaired_valid"), 0)
            )
            metastable = c.status == Status.SCORED and c.e_above_hull < METASTABLE_EV_PER_ATOM
            valid = c.status in (Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE)
            repaired = c.structure is not None and "repair_of" in c.extra
            row["proposed"] += 1
            row["parsed"] += c.structure is not None
            row["valid"] += valid
            row["repaired"] += repaired
            row["repaired_valid"] += repaired and valid
            row["unique"] += c.status in (Status.VALID, Status.SCORED, Status.FAILED)
            row["relaxed"] += c.status == Status.SCORED
            row["metastable"] += metastable
            row["metastable_new"] += metastable and is_new(c) and not is_artefact(c, admit)
            row["screened"] += int(c.extra.get("screened", 0))
        for row in stats.values():
            for name in names[1:]:
                row[f"{name}_rate"] = row[name] / row["proposed"]
        return stats

    def llm_call(self, call_id: int) -> dict:
        """Prompt and response of the LLM call `candidate.extra["llm_call_id"]` (see RunStore.llm_call)."""
        with self._store() as store:
            return store.llm_call(call_id)

    def generation_metrics(self) -> dict[int, dict]:
        with self._store() as store:
            return store.generation_metrics()

    def meta(self) -> dict:
        """Provenance stored when the run started: versions, hull reference, known-materials index."""
        with self._store() as store:
            return store.meta()

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r})"
