"""The evolutionary loop, one generation at a time: propose → check → evaluate → mark → select → record.

`Search` sequences the steps; each lives in its own module (`proposing`, `child_checks`,
`scoring.objectives.score_children`, `scoring.discovery.mark_children`, `selection`,
`generation_record`) and a candidate's status changes only through `Candidate`'s methods. The
engine talks to proposers and the evaluation stage through their protocols; it loads no model for
the evaluation (the executor's evaluators own it, in this process or in Ray workers; the only model
called in this process is the fast one that ranks CSP templates once) and keeps what needs the
whole run: hull, custom fitness, selection, metrics and the store. Each child is committed to the
run store the moment its status changes, so `Search.resume` continues a killed run without losing
or re-scoring anything; seeded runs draw their random numbers per generation (`proposing`), so a
resumed one ends where an uninterrupted one would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from matsearch.candidate import Candidate, Status
from matsearch.child_checks import builtin_screen, check_children, seen_structures, validity_check
from matsearch.errors import DataError, MatsearchError, RunInterrupted, SpecError
from matsearch.evaluation.evaluator import PROPERTY_OBJECTIVES
from matsearch.evaluation.executor import Executor
from matsearch.evaluation.executors import build_executor
from matsearch.generation_record import generation_record
from matsearch.preflight import check_environment
from matsearch.progress import ProgressCallback, ProgressReporter
from matsearch.proposers.base import Proposal, Proposer, RunContext
from matsearch.proposers.goals import docstring_summary, goals_from_objectives
from matsearch.proposers.registry import build_proposer
from matsearch.proposing import (
    chemistry_limits,
    initial_proposals,
    later_proposals,
    ranked_templates,
    to_candidate,
)
from matsearch.run import Run
from matsearch.scoring.csp import load_known_structure
from matsearch.scoring.custom import load_fitness_table
from matsearch.scoring.discovery import DiscoveryMarker, is_artefact, mark_children
from matsearch.scoring.elemental import mlip_elemental_references
from matsearch.scoring.hull import HullReference
from matsearch.scoring.objectives import score_children
from matsearch.selection import select
from matsearch.spec import RunSpec, dump_spec, load_spec, parse_spec
from matsearch.store import LOG_NAME, SPEC_NAME, RunStore
from matsearch.structures.dedup import DuplicateIndex, MatchTolerances
from matsearch.structures.known import KnownMaterials
from matsearch.versions import provenance

logger = logging.getLogger(__name__)


class Search:
    """A search described by a RunSpec (object, dict, or YAML path). `Search(spec).run()` runs it."""

    def __init__(self, spec: RunSpec | dict | str | Path, *, on_progress: ProgressCallback | None = None):
        if isinstance(spec, (str, Path)):
            spec = load_spec(spec)
        elif isinstance(spec, dict):
            spec = parse_spec(spec)
        self.spec = spec
        self.run_dir = spec.run_dir  # where the run is stored; a resumed run stays where it is
        self.limits = chemistry_limits(spec)
        self._report = ProgressReporter(on_progress)
        self._executor: Executor | None = None
        self._hull: HullReference | None = None
        self._known: KnownMaterials | None = None
        self._templates: list[Proposal] | None = None
        self.fitness = load_fitness_table(spec.custom)  # a bad dotted path fails before the run starts
        self.properties = [name for name in PROPERTY_OBJECTIVES if spec.has_objective(name)]
        self.known_structure = load_known_structure(spec.task.known_structure)
        self.validity_reason = validity_check(spec, self.limits)  # a structure's reason, or None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, on_progress: ProgressCallback | None = None) -> Search:
        """The search stored in a run folder (its resolved spec.yaml), for `resume`. The run
        continues in `run_dir` itself, also when the folder was copied or moved."""
        run_dir = Path(run_dir)
        with RunStore.open(run_dir, lock=False) as store:
            text = store.spec_yaml()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecError(f"'{run_dir / SPEC_NAME}' is not valid YAML; restore it") from None
        search = cls(data, on_progress=on_progress)
        search.run_dir = run_dir
        return search

    # --- entry points -----------------------------------------------------------------------

    def run(self, *, overwrite: bool = False) -> Run:
        """Start a new run in `spec.output/spec.name` and carry it to the last generation.

        Everything that can be checked beforehand (environment, reference data) is checked before
        the run folder is created. An existing run of the same name is refused, or, with
        `overwrite`, deleted once those checks have passed.
        """
        if not overwrite:
            RunStore.refuse_existing(self.run_dir)
        check_environment(self.spec)
        hull = self.hull  # fail on missing reference data before creating the run folder
        meta = provenance(self.spec) | {
            "hull_reference": hull.describe(),
            "known_materials": self.known.provenance(),
        }
        if overwrite:
            RunStore.remove(self.run_dir)
        store = RunStore.create(self.run_dir, dump_spec(self.spec), meta)
        return self._drive(store)

    def resume(self) -> Run:
        """Continue the run in `self.run_dir` from its store."""
        return self._drive(RunStore.open(self.run_dir))

    # --- lazily built parts -----------------------------------------------------------------

    @property
    def hull(self) -> HullReference:
        """The hull reference, with μ_i computed by the run's MLIP when the spec asks for it."""
        if self._hull is None:
            with _spec_key("reference.hull", self.spec.reference.hull, "mp20-subset"):
                hull = HullReference.named(self.spec.reference.hull)
            if self.spec.reference.elemental == "mlip":
                refs = mlip_elemental_references(self.limits.elements, self.executor)
                hull = hull.with_elemental_references(refs, f"{self.spec.mlip.backend} MLIP, relaxed")
            self._hull = hull
        return self._hull

    @property
    def known(self) -> KnownMaterials:
        """The known-materials index (seeds, known-vs-new), matching with the spec's tolerances."""
        if self._known is None:
            with _spec_key("reference.known", self.spec.reference.known, "mp20"):
                self._known = KnownMaterials.load(self.spec.reference.known, self.tolerances)
        return self._known

    @property
    def tolerances(self) -> MatchTolerances:
        """StructureMatcher tolerances of the spec's `matching` section."""
        m = self.spec.matching
        return MatchTolerances(m.ltol, m.stol, m.angle_tol)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = build_executor(self.spec.executor, self.spec.mlip, self.spec.scoring)
        return self._executor

    @property
    def templates(self) -> list[Proposal]:
        """CSP: the target's decorated templates, best-ranked first (`proposing.ranked_templates`;
        computed once per run)."""
        if self._templates is None:
            self._templates = ranked_templates(self.spec, self.limits, self.known, self.validity_reason)
        return self._templates

    # --- the loop ---------------------------------------------------------------------------

    def _drive(self, store: RunStore) -> Run:
        try:
            with _run_log(store.run_dir / LOG_NAME):
                history = store.candidates(status=[Status.VALID, Status.SCORED, Status.FAILED])
                seen = seen_structures(history, self.tolerances)
                context = self._proposer_context(seen)
                proposers = [build_proposer(p, store.run_dir, context) for p in self.spec.proposers]
                marker = DiscoveryMarker(self.known, self.tolerances, self.hull)
                marker.remember(history)
                del history
                for generation in range(self.spec.generations + 1):
                    if not store.is_completed(generation):
                        self._generation(store, generation, proposers, seen, marker)
                logger.info("run %s finished after generation %d", self.spec.name, self.spec.generations)
        except MatsearchError as exc:
            raise RunInterrupted(
                f"{exc} (the run is saved; continue it with `matsearch resume {store.run_dir}`)"
            ) from exc
        finally:
            if self._executor is not None:
                self._executor.close()
                self._executor = None
            store.close()
        return Run(self.run_dir)

    def _proposer_context(self, seen: DuplicateIndex) -> RunContext:
        """The objectives (custom ones described by their docstrings), selection, validity check,
        builtin screen and (CSP, when an LLM proposer asks for them) example templates, as
        proposers see them."""
        meanings = {name: docstring_summary(fn) for name, fn in self.fitness.items()}
        wanted = max((getattr(p, "template_examples", 0) for p in self.spec.proposers), default=0)
        known = self.known if self.spec.task.kind == "generate" else None
        return RunContext(
            goals=goals_from_objectives(self.spec.objectives, meanings),
            selection=self.spec.selection,
            charge_neutrality=self.spec.validity.charge_neutrality,
            check=self.validity_reason,
            screen=builtin_screen(self.validity_reason, seen, known),
            examples=tuple(t.structure for t in self.templates[:wanted]) if wanted else (),
        )

    def _generation(
        self,
        store: RunStore,
        generation: int,
        proposers: list[Proposer],
        seen: DuplicateIndex,
        marker: DiscoveryMarker,
    ) -> None:
        """propose → check → evaluate → mark → select → record, on the generation's children held
        in memory (read from the store once, on resume); each child is committed to the store the
        moment its status changes."""
        started = time.perf_counter()
        parents = store.get(store.population(generation - 1)) if generation > 0 else []
        if store.is_proposed(generation):
            children = store.candidates(generation=generation)
        else:
            self._report([], generation, "proposing")
            children = store.add(
                self._propose(store, generation, parents, proposers), proposed_generation=generation
            )
            logger.info("generation %d: %d children proposed", generation, len(children))
        self._report(children, generation, "checking")
        for child in check_children(children, self.validity_reason, seen):
            store.update([child])
        self._report(children, generation, "relaxing")
        waiting = [c for c in children if c.status == Status.VALID]
        evaluations = self.executor.evaluate([c.structure for c in waiting], self.properties)
        for child in score_children(waiting, evaluations, self.hull, self.fitness):
            store.update([child])
            self._report(children, generation, "relaxing", throttle_s=1.0)
        for child in mark_children(children, marker, seen):
            store.update([child])
        self._report(children, generation, "selecting")
        pool = parents + [c for c in children if c.status == Status.SCORED]
        admit = self.spec.discovery.admit
        survivors = select(
            pool,
            self.spec.objectives,
            self.spec.population_size,
            self.spec.selection,
            demote=lambda c: is_artefact(c, admit),
        )
        metrics = generation_record(
            self.spec,
            children,
            survivors,
            store.generation_metrics(),
            lambda: store.candidates(status=Status.SCORED),
            self.known_structure,
        )
        metrics["wall_time_s"] = time.perf_counter() - started
        store.complete_generation(generation, [c.id for c in survivors], metrics)
        self._report(children, generation, "done")
        logger.info("generation %d done: %s", generation, metrics)

    def _propose(
        self, store: RunStore, generation: int, parents: list[Candidate], proposers: list[Proposer]
    ) -> list[Candidate]:
        """The generation's children, not yet stored (`proposing`); CSP templates continue after
        those the store already holds, so a resumed run goes on where it stopped."""
        if generation == 0:
            proposals = initial_proposals(self.spec, self.limits, self.known, self.templates)
        else:
            used = store.count(operator="template") if self.templates else 0
            proposals = later_proposals(
                self.spec, self.limits, generation, parents, proposers, self.templates[used:]
            )
        return [to_candidate(generation, p) for p in proposals]


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Log the package's INFO messages (and above) to the run's log file at `path` while the run
    lasts; the package logger's level is the user's again afterwards. An error that stops the run
    is logged there first."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    package_logger = logging.getLogger("matsearch")
    user_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(min(package_logger.getEffectiveLevel(), logging.INFO))
    try:
        yield
    except MatsearchError as exc:
        logger.error("run stopped: %s", exc)
        raise
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(user_level)
        handler.close()


@contextmanager
def _spec_key(key: str, value: str, shipped: str) -> Iterator[None]:
    """Name the spec setting behind a missing dataset, and the default that needs no download."""
    try:
        yield
    except DataError as exc:
        reason = exc.args[0].rstrip(".")
        hint = f"needed by {key}: {value}; {key}: {shipped} ships with matsearch"
        raise DataError(f"{reason} ({hint}).") from exc
