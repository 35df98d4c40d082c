"""The evolutionary loop: propose → validate → dedup → relax → score → select, one generation at a time.

The engine talks to proposers and the evaluation stage only through their protocols; it loads no
model for the evaluation (the executor's evaluators own it, in this process or in Ray workers; the
only model the engine itself calls is the fast one that ranks CSP templates once) and keeps what
needs the whole run: hull, custom fitness, selection, metrics and the store. Every state change is
committed to the run store before the next step, so `Search.resume` continues a killed run
without losing or re-scoring anything. Generation g draws its random numbers from
`default_rng([seed, g, k])` (k = proposer index), so a resumed seeded run ends where an
uninterrupted one would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from matsearch.candidate import Candidate, Status
from matsearch.child_checks import builtin_screen, validity_check
from matsearch.errors import DataError, MatsearchError, RunInterrupted, SpecError
from matsearch.evaluation.evaluator import PROPERTY_OBJECTIVES
from matsearch.evaluation.executor import Executor
from matsearch.evaluation.executors import build_executor
from matsearch.evaluation.fast_energy import fast_energies
from matsearch.generation_record import generation_counts, generation_record
from matsearch.preflight import check_environment
from matsearch.proposers.base import Proposal, Proposer, RunContext
from matsearch.proposers.builtin import random_starts
from matsearch.proposers.goals import docstring_summary, goals_from_objectives
from matsearch.proposers.registry import build_proposer, split_children
from matsearch.relax_defaults import PRERELAX_MODEL
from matsearch.run import Run
from matsearch.scoring.csp import load_known_structure
from matsearch.scoring.custom import apply_custom_fitness, load_fitness_table
from matsearch.scoring.discovery import DiscoveryMarker, is_artefact
from matsearch.scoring.elemental import mlip_elemental_references
from matsearch.scoring.hull import HullReference
from matsearch.scoring.objectives import apply_evaluation
from matsearch.selection import select
from matsearch.spec import RunSpec, dump_spec, load_spec, parse_spec
from matsearch.store import LOG_NAME, SPEC_NAME, RunStore
from matsearch.structures.dedup import DuplicateIndex, MatchTolerances
from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.prototypes import prototype_seeds
from matsearch.structures.seeds import initial_population
from matsearch.structures.templates import Template, template_decorations
from matsearch.versions import provenance

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counts for one generation, sent to the `on_progress` callback after every change."""

    generation: int
    stage: str  # "proposing", "checking", "relaxing", "selecting", "done"
    total: int = 0  # children proposed this generation
    counts: dict[str, int] = field(default_factory=dict)  # proposed/valid/unique/relaxed/metastable


ProgressCallback = Callable[[Progress], None]


def chemistry_limits(spec: RunSpec) -> ChemistryLimits:
    """The spec's chemistry as the plain limits seeds, proposers and validity checks use."""
    loose = frozenset(spec.chemistry.elements)
    return ChemistryLimits(
        elements=spec.chemistry.allowed_elements,
        max_atoms=spec.chemistry.max_atoms,
        max_elements=spec.chemistry.max_elements,
        target=spec.task.target_composition,
        systems=tuple(frozenset(system.split("-")) | loose for system in spec.chemistry.systems),
    )


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
        self.on_progress = on_progress
        self._executor: Executor | None = None
        self._hull: HullReference | None = None
        self._known: KnownMaterials | None = None
        self._templates: list[Proposal] | None = None
        self._last_report = 0.0  # time.monotonic() of the last progress callback
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

    # --- the loop ---------------------------------------------------------------------------

    def _drive(self, store: RunStore) -> Run:
        handler = logging.FileHandler(store.run_dir / LOG_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        package_logger = logging.getLogger("matsearch")
        user_level = package_logger.level  # restored when the run ends: the user's setting
        package_logger.addHandler(handler)
        package_logger.setLevel(min(package_logger.getEffectiveLevel(), logging.INFO))
        try:
            history = store.candidates(status=[Status.VALID, Status.SCORED, Status.FAILED])
            dedup = self._rebuild_dedup(history)
            context = self._proposer_context(dedup)
            proposers = [build_proposer(p, store.run_dir, context) for p in self.spec.proposers]
            marker = DiscoveryMarker(self.known, self.tolerances, self.hull)
            marker.remember(c for c in history if c.status == Status.SCORED)
            del history
            for generation in range(self.spec.generations + 1):
                if not store.is_completed(generation):
                    self._generation(store, generation, proposers, dedup, marker)
        except MatsearchError as exc:
            logger.error("run stopped: %s", exc)
            raise RunInterrupted(
                f"{exc} (the run is saved; continue it with `matsearch resume {store.run_dir}`)"
            ) from exc
        else:
            logger.info("run %s finished after generation %d", self.spec.name, self.spec.generations)
        finally:
            if self._executor is not None:
                self._executor.close()
                self._executor = None
            package_logger.removeHandler(handler)
            package_logger.setLevel(user_level)
            handler.close()
            store.close()
        return Run(self.run_dir)

    def _proposer_context(self, dedup: DuplicateIndex) -> RunContext:
        """The objectives (custom ones described by their docstrings), selection, validity check,
        builtin screen and (CSP, when an LLM proposer asks for them) example templates, as
        proposers see them."""
        meanings = {name: docstring_summary(fn) for name, fn in self.fitness.items()}
        wanted = max((getattr(p, "template_examples", 0) for p in self.spec.proposers), default=0)
        return RunContext(
            goals=goals_from_objectives(self.spec.objectives, meanings),
            selection=self.spec.selection,
            charge_neutrality=self.spec.validity.charge_neutrality,
            check=self.validity_reason,
            screen=builtin_screen(
                self.validity_reason, dedup, self.known if self.spec.task.kind == "generate" else None
            ),
            examples=tuple(t.structure for t in self.templates[:wanted]) if wanted else (),
        )

    def _rebuild_dedup(self, history: list[Candidate]) -> DuplicateIndex:
        """Every structure the run has seen (`history`: the stored unique candidates): the proposed
        structure of each and the relaxed structure of each marked one (a strained copy of a
        relaxed parent is a duplicate before it is relaxed back into it)."""
        index = DuplicateIndex(self.tolerances)
        for c in history:
            index.add(c.id, c.structure)
            if c.novelty is not None and c.status == Status.SCORED:
                index.add(c.id, c.relaxed)
        return index

    def _generation(
        self,
        store: RunStore,
        generation: int,
        proposers: list[Proposer],
        dedup: DuplicateIndex,
        marker: DiscoveryMarker,
    ) -> None:
        """One generation on its children held in memory (read from the store once, on resume);
        every change is committed to the store as it happens."""
        started = time.perf_counter()
        parents = store.get(store.population(generation - 1)) if generation > 0 else []
        if store.is_proposed(generation):
            children = store.candidates(generation=generation)
        else:
            self._report([], generation, "proposing")
            children = store.add(
                self._propose(generation, parents, proposers, store), proposed_generation=generation
            )
            logger.info("generation %d: %d children proposed", generation, len(children))
        self._check(store, generation, children, dedup)
        self._relax(store, generation, children)
        self._mark(store, children, marker, dedup)
        self._report(children, generation, "selecting")
        pool = parents + [c for c in children if c.status == Status.SCORED]
        survivors = select(
            pool,
            self.spec.objectives,
            self.spec.population_size,
            self.spec.selection,
            demote=lambda c: is_artefact(c, self.spec.discovery.admit),
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
        self, generation: int, parents: list[Candidate], proposers: list[Proposer], store: RunStore
    ) -> list[Candidate]:
        seed = self.spec.seed
        if generation == 0:
            return [self._to_candidate(0, p) for p in self._initial_proposals()]
        children = self.spec.children_per_generation
        proposals = self._later_templates(store, children)
        counts = split_children(children - len(proposals), [p.fraction for p in self.spec.proposers])
        for k, (proposer, n) in enumerate(zip(proposers, counts, strict=True)):
            if n > 0:
                rng = np.random.default_rng([seed, generation, k])
                proposals += proposer.propose(parents, n, self.limits, rng)
        return [self._to_candidate(generation, p) for p in proposals]

    def _initial_proposals(self) -> list[Proposal]:
        """Generation 0: the known materials inside the chemistry, most stable first (a quarter of
        the population: parents, not discoveries), then prototypes of other systems decorated with
        the run's elements, then random symmetric structures. CSP starts from the best-ranked
        templates (task.template_share of the population), then random structures: known answers
        are not handed in (templates never have the target's own formula)."""
        size = self.spec.population_size
        rng = np.random.default_rng([self.spec.seed, 0, 0])
        if self.spec.task.kind == "csp":
            templates = self.templates[: round(self.spec.task.template_share * size)]
            return templates + random_starts(self.limits, size - len(templates), rng)
        known_seeds = initial_population(self.limits, max(1, size // 4), self.known)
        prototypes = prototype_seeds(self.limits, size - len(known_seeds), self.known)
        proposals = [
            Proposal(structure=s, operator="seed", parents=[], origin="known", extra={"material_id": mid})
            for s, mid in known_seeds
        ]
        proposals += [
            Proposal(
                structure=s, operator="prototype", parents=[], origin="builtin", extra=dict(s.properties)
            )
            for s in prototypes
        ]
        return proposals + random_starts(self.limits, size - len(proposals), rng)

    @property
    def templates(self) -> list[Proposal]:
        """CSP: the target's decorated templates (structures.templates) that pass the run's
        validity rules, ranked by the fast model's energy per atom of the rescaled decoration
        (mlip.prerelax, or PRERELAX_MODEL when that is null; one batched single point, no
        relaxation), lowest first; empty for generate runs or with both template shares 0."""
        if self._templates is None:
            task = self.spec.task
            wanted = task.kind == "csp" and (task.template_share > 0 or task.template_operator_share > 0)
            found: list[Template] = []
            if wanted and self.limits.target is not None:
                found = template_decorations(self.limits.target, self.limits.max_atoms, self.known)
                found = [t for t in found if self.validity_reason(t.structure) is None]
            model = self.spec.mlip.prerelax or PRERELAX_MODEL
            energies = fast_energies([t.structure for t in found], model, self.spec.mlip.device)
            energies = [e if np.isfinite(e) else None for e in energies]
            ranked = sorted(zip(found, energies, strict=True), key=lambda te: (te[1] is None, te[1] or 0))
            self._templates = [
                Proposal(
                    structure=t.structure,
                    operator="template",
                    parents=[],
                    origin="template",
                    extra=t.provenance() | {"screen_model": model, "screen_energy_per_atom": energy},
                )
                for t, energy in ranked
            ]
            logger.info("%d templates ranked by %s single points", len(self._templates), model)
        return self._templates

    def _later_templates(self, store: RunStore, children: int) -> list[Proposal]:
        """CSP after generation 0: the next task.template_operator_share of `children` from the
        ranked templates not yet proposed (counted from the store, so a resumed run continues)."""
        share = self.spec.task.template_operator_share
        if self.spec.task.kind != "csp" or share <= 0:
            return []
        used = sum(1 for c in store.candidates() if c.operator == "template")
        return self.templates[used : used + round(share * children)]

    @staticmethod
    def _to_candidate(generation: int, proposal: Proposal) -> Candidate:
        candidate = Candidate(
            id=None,
            generation=generation,
            origin=proposal.origin,
            operator=proposal.operator,
            parents=list(proposal.parents),
            structure=proposal.structure,
            extra=dict(proposal.extra),
            valid_when_proposed=proposal.valid,
        )
        if proposal.structure is None:
            candidate.status = Status.INVALID
            candidate.reason = proposal.reason or "proposer produced no structure"
        return candidate

    def _check(
        self, store: RunStore, generation: int, children: list[Candidate], dedup: DuplicateIndex
    ) -> None:
        """Validity (unless the proposer's screen already ran it) then dedup for every new child,
        committed one by one in id order."""
        self._report(children, generation, "checking")
        for candidate in [c for c in children if c.status == Status.PROPOSED]:
            started = time.perf_counter()
            reason = None if candidate.valid_when_proposed else self.validity_reason(candidate.structure)
            if reason is not None:
                candidate.status, candidate.reason = Status.INVALID, reason
            elif (match := dedup.find(candidate.structure)) is not None:
                candidate.status, candidate.reason = (
                    Status.DUPLICATE,
                    f"duplicate of candidate {match}",
                )
            else:
                candidate.status = Status.VALID
                dedup.add(candidate.id, candidate.structure)
            candidate.timings["check"] = time.perf_counter() - started
            store.update([candidate])
        self._report(children, generation, "relaxing")

    def _relax(self, store: RunStore, generation: int, children: list[Candidate]) -> None:
        """Evaluate (relax and property scans) and score waiting children; each result is committed
        the moment it arrives."""
        pending = [c for c in children if c.status == Status.VALID]
        for index, evaluation in self.executor.evaluate([c.structure for c in pending], self.properties):
            candidate = pending[index]
            apply_evaluation(candidate, evaluation, self.hull)
            if candidate.status == Status.SCORED and self.fitness:
                started = time.perf_counter()
                apply_custom_fitness(candidate, self.fitness, evaluation.relax)
                candidate.timings["custom"] = time.perf_counter() - started
            store.update([candidate])
            self._report(children, generation, "relaxing", throttle_s=1.0)

    def _mark(
        self, store: RunStore, children: list[Candidate], marker: DiscoveryMarker, dedup: DuplicateIndex
    ) -> None:
        """Known vs new, duplicates after relaxation and artefact flags, in id order, each committed;
        the relaxed structure of each unique one joins the dedup index."""
        for candidate in [c for c in children if c.status == Status.SCORED]:
            if candidate.novelty is None:
                started = time.perf_counter()
                marker.mark(candidate)
                candidate.timings["mark"] = time.perf_counter() - started
                store.update([candidate])
                if candidate.status == Status.SCORED:
                    dedup.add(candidate.id, candidate.relaxed)

    # --- reporting --------------------------------------------------------------------------

    def _report(
        self, children: list[Candidate], generation: int, stage: str, throttle_s: float = 0.0
    ) -> None:
        """Send the generation's counts to the progress callback; with `throttle_s`, at most once per
        that many seconds (counting costs O(children))."""
        if self.on_progress is None:
            return
        now = time.monotonic()
        if throttle_s and now - self._last_report < throttle_s:
            return
        self._last_report = now
        self.on_progress(Progress(generation, stage, len(children), generation_counts(children)))


@contextmanager
def _spec_key(key: str, value: str, shipped: str) -> Iterator[None]:
    """Name the spec setting behind a missing dataset, and the default that needs no download."""
    try:
        yield
    except DataError as exc:
        reason = exc.args[0].rstrip(".")
        hint = f"needed by {key}: {value}; {key}: {shipped} ships with matsearch"
        raise DataError(f"{reason} ({hint}).") from exc
