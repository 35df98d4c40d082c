"""Ray executor: evaluator actors on a Ray cluster evaluate batches; the driver streams results back.

Each of `spec.workers` actors holds one evaluator (built from the `mlip` and `scoring` specs on the
actor's own CPU or GPU, the only model of the run) and evaluates one batch of `mlip.batch_size`
structures at a time: the relaxation and every property scan asked for. Batches are cut by index
exactly as `LocalExecutor` cuts them, whichever worker takes them, so every structure is evaluated
in the same company in every run: a seeded run reproduces itself, and matches a local run with the
same torch thread count and device (README, "What reproduces and what may differ").
Structures travel as compact JSON text (structures.codec): 40-60%
fewer bytes than a pickled pymatgen Structure at about the same CPU cost (0.1-0.8 ms per structure
for 8-64 atoms, encode plus decode; benchmarks/bench_scaling.py), and the workers need not run the
driver's pymatgen version.

Failures: a worker that dies mid-batch (process killed, node lost, out of memory) is replaced by a
new actor and its batch goes back to the queue; a batch is tried at most `max_attempts` times,
after which its structures get an Evaluation whose relaxation has `error` set. Every index is yielded once.
The workers must be able to import matsearch (install it on every node of a cluster).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import ray
from pymatgen.core import Lattice, Structure
from ray.exceptions import RayError, RayTaskError

from matsearch.errors import MatsearchError, ModelError
from matsearch.evaluation.evaluators import build_evaluator
from matsearch.results import Evaluation, RelaxResult
from matsearch.spec import ExecutorSpec, MLIPSpec, Scoring
from matsearch.structures.codec import structure_from_json, structure_to_json

logger = logging.getLogger(__name__)

# (relaxed structure as JSON, other RelaxResult fields, other Evaluation fields)
WireEvaluation = tuple[str | None, dict[str, Any], dict[str, Any]]


def evaluation_to_wire(evaluation: Evaluation) -> WireEvaluation:
    """An Evaluation as plain data: the relaxed structure as codec JSON, every other field as is."""
    relaxed = evaluation.relax
    values = {f.name: getattr(relaxed, f.name) for f in fields(RelaxResult) if f.name != "structure"}
    text = None if relaxed.structure is None else structure_to_json(relaxed.structure)
    rest = {f.name: getattr(evaluation, f.name) for f in fields(Evaluation) if f.name != "relax"}
    return text, values, rest


def evaluation_from_wire(wire: WireEvaluation) -> Evaluation:
    """Inverse of `evaluation_to_wire`."""
    text, values, rest = wire
    relaxed = RelaxResult(structure=None if text is None else structure_from_json(text), **values)
    return Evaluation(relax=relaxed, **rest)


class EvaluationWorker:
    """Body of one Ray actor: an evaluator on this actor's device, fed JSON structures."""

    def __init__(self, mlip: MLIPSpec, scoring: Scoring, num_threads: int) -> None:
        import torch

        torch.set_num_threads(num_threads)
        self.evaluator = build_evaluator(mlip, scoring)

    def ready(self) -> dict[str, Any]:
        """Load the model (one 2-atom energy) and say where this worker runs."""
        probe = Structure(Lattice.cubic(2.9), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        (energy,) = self.evaluator.single_point([probe])
        if not math.isfinite(energy):
            raise ModelError(f"the MLIP returned {energy} eV/atom for a 2-atom test cell")
        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        }

    def evaluate(self, payload: list[str], properties: list[str]) -> list[WireEvaluation]:
        """Evaluate structures given as codec JSON; one wire evaluation per input, same order."""
        structures = [structure_from_json(text) for text in payload]
        return [evaluation_to_wire(e) for e in self.evaluator.evaluate(structures, properties)]


@dataclass(frozen=True)
class WorkerInfo:
    """Where one ready worker runs."""

    slot: int  # 0 .. workers-1; a replacement keeps the slot of the worker it replaces
    pid: int
    node_id: str
    node_ip: str
    gpu_ids: list[str]


@dataclass
class ExecutorStats:
    """What happened so far: batches sent, batches sent again, workers replaced, batches given up."""

    batches_submitted: int = 0
    batches_retried: int = 0
    workers_replaced: int = 0
    batches_failed: int = 0


@dataclass
class _Batch:
    indices: list[int]  # positions in the structures passed to evaluate()
    attempts: int = 0
    last_error: str = ""


@dataclass
class _Slot:
    """One worker position: the current actor, its readiness and how often it failed to start."""

    actor: Any
    ready_ref: Any  # ObjectRef of actor.ready(), None once ready
    info: WorkerInfo | None = None
    start_failures: int = 0
    busy: bool = False


class RayExecutor:
    """Evaluate on `spec.workers` Ray actors, yielding `(index, evaluation)` as each batch finishes.

    Args:
        spec: the run spec's `executor` section (address, workers, GPUs and CPUs per worker).
        mlip: the run spec's `mlip` section; `batch_size` structures go to a worker at a time.
        scoring: the run spec's `scoring` section (property scan settings).
        max_attempts: tries per batch (and consecutive start failures per worker slot) before
            giving up on it.
        startup_timeout_s: seconds to wait for a first worker to load its model while no batch is
            running, before concluding the cluster cannot host one.
    """

    name = "ray"

    def __init__(
        self,
        spec: ExecutorSpec,
        mlip: MLIPSpec,
        scoring: Scoring,
        *,
        max_attempts: int = 3,
        startup_timeout_s: float = 600.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.spec = spec
        self.mlip = mlip
        self.scoring = scoring
        self.max_attempts = max_attempts
        self.startup_timeout_s = startup_timeout_s
        self.stats = ExecutorStats()
        self._last_failure = "no failure recorded"
        self._started_ray = _connect(spec)
        _check_resources(spec)
        self._actor_class = ray.remote(EvaluationWorker).options(
            num_cpus=spec.cpus_per_worker,
            num_gpus=spec.gpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
        )
        self._slots: list[_Slot | None] = [self._new_slot() for _ in range(spec.workers)]

    # --- public -----------------------------------------------------------------------------

    def workers(self, timeout_s: float | None = None) -> list[WorkerInfo]:
        """Wait until every worker has loaded its model; where each one runs, by slot.

        Raises MatsearchError when a worker is not ready within `timeout_s` seconds.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if not self._live_slots():
                raise MatsearchError(f"no Ray worker could start ({self._last_failure})")
            waiting = [s.ready_ref for s in self._live_slots() if s.ready_ref is not None]
            if not waiting:
                return [s.info for s in self._live_slots() if s.info is not None]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=left)
            for ref in done:
                self._on_ready(ref)
            if len(done) < len(waiting) and deadline is not None and time.monotonic() >= deadline:
                raise MatsearchError(
                    f"{len(waiting) - len(done)} Ray workers were not ready after {timeout_s:g} s; "
                    "check that the cluster has free "
                    f"{_per_worker(self.spec)} for each worker"
                )

    def evaluate(
        self, structures: Sequence[Structure], properties: Collection[str] = ()
    ) -> Iterator[tuple[int, Evaluation]]:
        """Yield `(index into structures, evaluation)` as batches finish; every index exactly once."""
        size = self.mlip.batch_size
        queue = deque(
            _Batch(list(range(start, min(start + size, len(structures)))))
            for start in range(0, len(structures), size)
        )
        payload: dict[int, str] = {}  # codec JSON by index, encoded once even when retried
        running: dict[Any, tuple[_Batch, int]] = {}  # task ref -> (batch, slot index)
        pending = set(range(len(structures)))
        self._restart_workers_on_dead_nodes()  # a node may have gone since the last call
        try:
            yield from self._run(structures, sorted(properties), queue, payload, running, pending)
        finally:  # the caller stopped early: workers finish those batches, results are dropped
            for _, slot_index in running.values():
                slot = self._slots[slot_index] if slot_index < len(self._slots) else None
                if slot is not None:
                    slot.busy = False

    # --- internals --------------------------------------------------------------------------

    def _run(
        self,
        structures: Sequence[Structure],
        properties: list[str],
        queue: deque[_Batch],
        payload: dict[int, str],
        running: dict[Any, tuple[_Batch, int]],
        pending: set[int],
    ) -> Iterator[tuple[int, Evaluation]]:
        """The scheduling loop of `evaluate`: dispatch, wait for one event, handle it."""
        idle_since = time.monotonic()
        while pending:
            self._dispatch(structures, properties, queue, payload, running)
            starting = [s.ready_ref for s in self._live_slots() if s.ready_ref is not None]
            if not running and not starting:
                raise MatsearchError(
                    f"every Ray worker was lost and could not be restarted ({self._last_failure}), "
                    f"with {len(pending)} structures left to evaluate; check the cluster and resume"
                )
            timeout = None if running else _remaining(idle_since, self.startup_timeout_s)
            done, _ = ray.wait([*running, *starting], num_returns=1, timeout=timeout)
            if not done:
                raise MatsearchError(
                    f"no Ray worker could load the model within {self.startup_timeout_s:g} s; check "
                    f"that the cluster has {_per_worker(self.spec)} free for a worker"
                )
            ref = done[0]
            if ref not in running:
                self._on_ready(ref)
                continue
            batch, slot_index = running.pop(ref)
            idle_since = time.monotonic()
            results = self._collect(ref, batch, slot_index, queue)
            # keep the freed worker busy while the caller stores these results
            self._dispatch(structures, properties, queue, payload, running)
            if results is None:
                continue  # back in the queue
            pending.difference_update(batch.indices)
            yield from zip(batch.indices, results, strict=True)

    def close(self) -> None:
        """Stop the workers; shut Ray down if this executor started it."""
        if ray.is_initialized():
            for slot in self._live_slots():
                ray.kill(slot.actor, no_restart=True)
        self._slots = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def _dispatch(
        self,
        structures: Sequence[Structure],
        properties: list[str],
        queue: deque[_Batch],
        payload: dict[int, str],
        running: dict[Any, tuple[_Batch, int]],
    ) -> None:
        """Send queued batches to ready, idle workers."""
        for slot_index, slot in enumerate(self._slots):
            if not queue:
                return
            if slot is None or slot.busy or slot.ready_ref is not None:
                continue
            batch = queue.popleft()
            for i in batch.indices:
                if i not in payload:
                    payload[i] = structure_to_json(structures[i])
            ref = slot.actor.evaluate.remote([payload[i] for i in batch.indices], properties)
            batch.attempts += 1
            slot.busy = True
            running[ref] = (batch, slot_index)
            self.stats.batches_submitted += 1

    def _live_slots(self) -> list[_Slot]:
        return [s for s in self._slots if s is not None]

    def _new_slot(self) -> _Slot:
        threads = max(1, math.floor(self.spec.cpus_per_worker))
        actor = self._actor_class.remote(self.mlip, self.scoring, threads)
        return _Slot(actor=actor, ready_ref=actor.ready.remote())

    def _slot_of_ready(self, ref: Any) -> int:
        return next(i for i, s in enumerate(self._slots) if s is not None and s.ready_ref == ref)

    def _on_ready(self, ref: Any) -> None:
        """Record a worker's ready() outcome: ready, or replace it (a model error is raised)."""
        index = self._slot_of_ready(ref)
        slot = self._slots[index]
        assert slot is not None
        try:
            info = ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            if isinstance(cause, MatsearchError):
                raise cause from None
            reason = f"{type(cause).__name__}: {cause}"
            self._start_failed(index, reason)
            return
        except RayError as exc:
            self._start_failed(index, _first_line(exc))
            return
        slot.ready_ref = None
        slot.start_failures = 0
        slot.info = WorkerInfo(slot=index, **info)
        logger.info(
            "Ray worker %d ready: pid %d on %s, GPUs %s",
            index,
            slot.info.pid,
            slot.info.node_ip,
            slot.info.gpu_ids or "none",
        )

    def _start_failed(self, index: int, reason: str) -> None:
        slot = self._slots[index]
        assert slot is not None
        failures = slot.start_failures + 1
        logger.warning("Ray worker %d failed to start (%d times): %s", index, failures, reason)
        self._last_failure = f"last start failure: {reason}"
        ray.kill(slot.actor, no_restart=True)
        if failures >= self.max_attempts:
            self._slots[index] = None
            return
        replacement = self._new_slot()
        replacement.start_failures = failures
        self._slots[index] = replacement

    def _replace(self, index: int, reason: str) -> None:
        """A worker died or misbehaved mid-batch: kill what is left of it and start another."""
        slot = self._slots[index]
        assert slot is not None
        logger.warning("Ray worker %d lost (%s); starting a replacement", index, reason)
        self._last_failure = f"last loss: {reason}"
        ray.kill(slot.actor, no_restart=True)
        self._slots[index] = self._new_slot()
        self.stats.workers_replaced += 1
        self._restart_workers_on_dead_nodes()

    def _restart_workers_on_dead_nodes(self) -> None:
        """Restart idle workers whose node Ray reports dead, before a batch is sent to them.

        Busy ones are replaced when their own batch fails, which counts against that batch.
        """
        dead = {node["NodeID"] for node in ray.nodes() if not node["Alive"]}
        for index, slot in enumerate(self._slots):
            if slot is None or slot.busy or slot.info is None:
                continue
            if slot.info.node_id in dead:
                logger.warning("Ray worker %d was on lost node %s; restarting it", index, slot.info.node_ip)
                ray.kill(slot.actor, no_restart=True)
                self._slots[index] = self._new_slot()
                self.stats.workers_replaced += 1

    def _collect(
        self, ref: Any, batch: _Batch, slot_index: int, queue: deque[_Batch]
    ) -> list[Evaluation] | None:
        """The batch's results; None when it went back into the queue after a failure."""
        slot = self._slots[slot_index]
        assert slot is not None
        try:
            wire = ray.get(ref)
        except RayTaskError as exc:  # the evaluator raised inside a live worker
            slot.busy = False
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            batch.last_error = f"the evaluator raised {type(cause).__name__}: {_first_line(cause)}"
        except RayError as exc:  # the worker process or its node is gone
            batch.last_error = f"its Ray worker was lost ({type(exc).__name__})"
            self._replace(slot_index, _first_line(exc))
        else:
            slot.busy = False
            return [evaluation_from_wire(w) for w in wire]
        if batch.attempts < self.max_attempts:
            self.stats.batches_retried += 1
            queue.appendleft(batch)
            return None
        self.stats.batches_failed += 1
        plural = "s" if batch.attempts > 1 else ""
        error = f"gave up after {batch.attempts} attempt{plural}: {batch.last_error}"
        logger.error("batch of %d structures %s", len(batch.indices), error)
        return [Evaluation(RelaxResult(None, None, None, error=error)) for _ in batch.indices]


def _connect(spec: ExecutorSpec) -> bool:
    """Join the cluster at `spec.address`, or start a local Ray; True when we started it."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if spec.address:
        try:
            if spec.address.startswith("ray://"):
                ray.init(address=spec.address)  # Ray Client takes no local-node options
            else:
                ray.init(address=spec.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MatsearchError(
                f"cannot connect to the Ray cluster at executor.address '{spec.address}' ({exc}); "
                "start it with `ray start --head` or fix the address"
            ) from None
        return False
    ray.init(num_cpus=max(1, math.ceil(spec.workers * spec.cpus_per_worker)), **quiet)
    return True


def _check_resources(spec: ExecutorSpec) -> None:
    """Refuse a cluster on which not even one worker fits; warn when not all of them do."""
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus < spec.cpus_per_worker or gpus < spec.gpus_per_worker:
        raise MatsearchError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, too few for one worker with "
            f"{_per_worker(spec)}; lower executor.cpus_per_worker / gpus_per_worker"
        )
    if cpus < spec.workers * spec.cpus_per_worker or gpus < spec.workers * spec.gpus_per_worker:
        logger.warning(
            "the Ray cluster (%g CPUs, %g GPUs) cannot host all %d workers with %s each; "
            "the others start when resources free up",
            cpus,
            gpus,
            spec.workers,
            _per_worker(spec),
        )


def _per_worker(spec: ExecutorSpec) -> str:
    return f"{spec.cpus_per_worker:g} CPUs and {spec.gpus_per_worker:g} GPUs"


def _remaining(since: float, limit_s: float) -> float:
    return max(0.0, limit_s - (time.monotonic() - since))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
