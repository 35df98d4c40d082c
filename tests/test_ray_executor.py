"""RayExecutor on a 2-CPU local Ray: same numbers as LocalExecutor, nothing lost when a worker
process is killed mid-batch, property scans run in the workers while the driver holds no model, and
a seeded search (also the bulk-modulus example) ends with the same population as a local one."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from matsearch.engine import Search
from matsearch.evaluation.evaluators import build_evaluator
from matsearch.evaluation.local import LocalExecutor
from matsearch.mlip.model import MLIPModel
from matsearch.results import Evaluation, RelaxResult
from matsearch.spec import ExecutorSpec, MLIPSpec, Scoring, load_spec

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
psutil = pytest.importorskip("psutil")

from ray.cluster_utils import Cluster  # noqa: E402 - needs ray

from matsearch.evaluation.ray_executor import RayExecutor  # noqa: E402 - needs ray

MLIP = MLIPSpec(steps=60, batch_size=2, timeout_s=600.0)
SCORING = Scoring(bulk_modulus={"n_points": 5, "steps": 30})
RUNNING_TITLE = "ray::EvaluationWorker.evaluate"  # Ray's process title while an actor evaluates
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """One Ray cluster of one 2-CPU head node on this machine, shared by the tests of this module;
    executors join it. A test may add a second node and kill it.

    The driver's torch uses one thread meanwhile: the workers own the CPUs, and oversubscribed
    torch threads made the local reference relaxations about 18 times slower.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ray_session(ray_cluster: Cluster) -> None:
    """The module's Ray is up (for tests that do not touch its nodes)."""


@pytest.fixture(scope="module")
def structures() -> list[Structure]:
    """Eight MP-20 test crystals of at most 8 atoms, rattled by 0.05 Å (seeded)."""
    from matsearch.structures.known import KnownMaterials

    known = KnownMaterials.load()
    table = known.table
    rng = np.random.default_rng(3)
    picked = []
    for row in table[table["split"] == "test"].sort_values("material_id").index:
        structure = known.structure(int(row))
        if len(structure) <= 8:
            noise = rng.normal(0.0, 0.05, (len(structure), 3))
            picked.append(
                Structure(
                    structure.lattice,
                    structure.species,
                    structure.cart_coords + noise,
                    coords_are_cartesian=True,
                )
            )
        if len(picked) == 8:
            return picked
    raise AssertionError("MP-20 test split has fewer than 8 crystals of at most 8 atoms")


@pytest.fixture(scope="module")
def local_evaluations(ray_session: None, structures: list[Structure]) -> dict[int, Evaluation]:
    """Every structure evaluated in this process, bulk modulus included."""
    executor = LocalExecutor(build_evaluator(MLIP, SCORING), chunk_size=MLIP.batch_size)
    return dict(executor.evaluate(structures, ["bulk_modulus"]))


@pytest.fixture(scope="module")
def local_results(local_evaluations: dict[int, Evaluation]) -> dict[int, RelaxResult]:
    return {i: e.relax for i, e in local_evaluations.items()}


def _relaxations(stream: Iterator[tuple[int, Evaluation]]) -> dict[int, RelaxResult]:
    return {i: e.relax for i, e in stream}


@pytest.fixture
def driver_without_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a model in this (the driver's) process fails the test; Ray workers are unaffected."""

    monkeypatch.setattr(MLIPModel, "__init__", _refuse_model)


def _assert_same_results(got: dict[int, RelaxResult], reference: dict[int, RelaxResult]) -> None:
    assert sorted(got) == sorted(reference)
    for i, ours in got.items():
        theirs = reference[i]
        assert ours.error is None and theirs.error is None
        assert ours.steps == theirs.steps, f"structure {i}"
        assert ours.energy_per_atom == pytest.approx(theirs.energy_per_atom, abs=1e-6)
        np.testing.assert_allclose(ours.structure.lattice.matrix, theirs.structure.lattice.matrix, atol=1e-5)


def _kill_running_workers(stop: threading.Event, killed: list[int], limit: int) -> None:
    """SIGKILL up to `limit` of this process's Ray workers while they are inside evaluate()."""
    me = psutil.Process()
    while not stop.is_set() and len(killed) < limit:
        for process in me.children(recursive=True):
            try:
                title = " ".join(process.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if title.startswith(RUNNING_TITLE) and process.pid not in killed:
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                break
        time.sleep(0.05)


def test_every_index_once_with_local_energies(
    ray_session: None, structures: list[Structure], local_results: dict[int, RelaxResult]
) -> None:
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=2), MLIP, SCORING)
    try:
        workers = executor.workers(timeout_s=300)
        indices, got = [], {}
        for i, evaluation in executor.evaluate(structures):
            indices.append(i)
            got[i] = evaluation.relax
    finally:
        executor.close()
    assert len({w.pid for w in workers}) == 2
    assert sorted(indices) == list(range(len(structures)))  # each index exactly once
    assert executor.stats.batches_submitted == 4  # 8 structures in batches of 2
    _assert_same_results(got, local_results)


def test_worker_killed_mid_batch_loses_nothing(
    ray_session: None, structures: list[Structure], local_results: dict[int, RelaxResult]
) -> None:
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=2), MLIP, SCORING)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_running_workers, args=(stop, killed, 1))
    try:
        executor.workers(timeout_s=300)
        killer.start()
        indices, got = [], {}
        for i, evaluation in executor.evaluate(structures):
            indices.append(i)
            got[i] = evaluation.relax
    finally:
        stop.set()
        killer.join()
        executor.close()
    assert len(killed) == 1
    assert executor.stats.workers_replaced == 1
    assert executor.stats.batches_retried == 1
    assert sorted(indices) == list(range(len(structures)))
    _assert_same_results(got, local_results)


def test_relax_again_after_the_caller_stopped_early(
    ray_session: None, structures: list[Structure], local_results: dict[int, RelaxResult]
) -> None:
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=2), MLIP, SCORING)
    try:
        abandoned = executor.evaluate(structures)
        next(abandoned)
        abandoned.close()  # e.g. the engine's store write raised
        got = _relaxations(executor.evaluate(structures))
    finally:
        executor.close()
    _assert_same_results(got, local_results)


def test_batch_that_keeps_killing_workers_gets_errors(ray_session: None, structures: list[Structure]) -> None:
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=1), MLIP, SCORING, max_attempts=2)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_running_workers, args=(stop, killed, 2))
    try:
        executor.workers(timeout_s=300)
        killer.start()
        got = _relaxations(executor.evaluate(structures[:2]))
    finally:
        stop.set()
        killer.join()
        executor.close()
    assert len(killed) == 2
    assert sorted(got) == [0, 1]
    for result in got.values():
        assert result.structure is None
        assert result.error == "gave up after 2 attempts: its Ray worker was lost (ActorDiedError)"
    assert executor.stats.batches_failed == 1


def test_workers_of_a_lost_node_restart_before_they_get_a_batch(
    ray_cluster: Cluster, structures: list[Structure], local_results: dict[int, RelaxResult]
) -> None:
    node = ray_cluster.add_node(num_cpus=2)
    # one attempt per batch: a batch sent to a dead worker would come back as errors
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=4), MLIP, SCORING, max_attempts=1)
    try:
        workers = executor.workers(timeout_s=300)
        first = _relaxations(executor.evaluate(structures))
        ray_cluster.remove_node(node, allow_graceful=False)
        deadline = time.monotonic() + 120
        while any(n["Alive"] for n in ray.nodes() if n["NodeID"] == node.node_id):
            assert time.monotonic() < deadline, "Ray never noticed the removed node"
            time.sleep(0.5)
        second = _relaxations(executor.evaluate(structures))
    finally:
        executor.close()
    assert sum(w.node_id == node.node_id for w in workers) == 2
    _assert_same_results(first, local_results)
    _assert_same_results(second, local_results)
    assert executor.stats.workers_replaced == 2
    assert executor.stats.batches_retried == executor.stats.batches_failed == 0


SEARCH = {
    "name": "ray-vs-local",
    "seed": 5,
    "chemistry": {"elements": ["Na", "K", "Cl"], "max_atoms": 8, "max_elements": 2},
    "population_size": 4,
    "children_per_generation": 4,
    "generations": 2,
    "mlip": {"steps": 60, "batch_size": 2},
}


def _populations(run) -> list[list[tuple[int, str, float]]]:
    return [
        [(c.id, c.formula, round(c.energy_per_atom, 5)) for c in run.population(g)]
        for g in range(run.last_generation + 1)
    ]


def test_seeded_search_same_population_on_ray_and_local(ray_session: None, tmp_path: Path) -> None:
    local = Search({**SEARCH, "output": str(tmp_path / "local")}).run()
    on_ray = Search(
        {**SEARCH, "output": str(tmp_path / "ray"), "executor": {"kind": "ray", "workers": 2}}
    ).run()
    assert on_ray.last_generation == local.last_generation == 2
    assert _populations(on_ray) == _populations(local)
    assert ray.is_initialized()  # the executor left the module's Ray session running


@pytest.mark.slow
def test_two_seeded_ray_runs_of_the_quickstart_end_with_identical_populations(
    ray_session: None, tmp_path: Path
) -> None:
    """Batches are cut by index, whichever worker gets them, and results are stored by candidate:
    the same executor configuration reproduces a seeded run exactly (energies unrounded)."""
    import yaml

    spec = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    spec |= {"executor": {"kind": "ray", "workers": 2}, "mlip": {**spec["mlip"], "batch_size": 4}}
    first = Search({**spec, "output": str(tmp_path / "first")}).run()
    second = Search({**spec, "output": str(tmp_path / "second")}).run()
    exact = [
        [(c.id, c.formula, c.energy_per_atom, c.e_above_hull) for c in run.population(g)]
        for run in (first, second)
        for g in range(run.last_generation + 1)
    ]
    half = len(exact) // 2
    assert first.last_generation == second.last_generation == 3
    assert exact[:half] == exact[half:]


def test_bulk_modulus_scans_run_in_the_workers(
    ray_session: None,
    structures: list[Structure],
    local_evaluations: dict[int, Evaluation],
    driver_without_model: None,
) -> None:
    """The driver cannot build a model, yet every structure comes back with its bulk modulus: the
    scans ran in the workers, with the numbers of a local run."""
    executor = RayExecutor(ExecutorSpec(kind="ray", workers=2), MLIP, SCORING)
    try:
        got = dict(executor.evaluate(structures, ["bulk_modulus"]))
    finally:
        executor.close()
    assert sorted(got) == sorted(local_evaluations)
    scanned = 0
    for i, evaluation in got.items():
        local = local_evaluations[i]
        assert evaluation.errors == local.errors
        assert evaluation.scores.keys() == local.scores.keys()
        if "bulk_modulus" in local.scores:
            scanned += 1
            assert evaluation.scores["bulk_modulus"] == pytest.approx(local.scores["bulk_modulus"], rel=1e-6)
    assert scanned >= len(structures) // 2


def _stable_stiff(output: Path, executor: dict) -> dict:
    """examples/stable_stiff.yaml (e_hull and bulk modulus), shrunk to a tiny run."""
    spec = load_spec(EXAMPLES / "stable_stiff.yaml").model_dump(mode="json", exclude_defaults=True)
    return spec | {
        "population_size": 4,
        "children_per_generation": 4,
        "generations": 1,
        "mlip": {"steps": 40, "batch_size": 2},
        "scoring": {"bulk_modulus": {"n_points": 5, "steps": 30}},
        "executor": executor,
        "output": str(output),
    }


def _populations_with_moduli(run) -> list[list[tuple]]:
    def modulus(c) -> float | None:
        value = c.scores.get("bulk_modulus")
        return None if value is None else round(value, 3)

    return [
        [(c.id, c.formula, round(c.energy_per_atom, 5), modulus(c)) for c in run.population(g)]
        for g in range(run.last_generation + 1)
    ]


def test_stable_stiff_same_population_on_ray_and_local_without_a_model_in_the_driver(
    ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Search(_stable_stiff(tmp_path / "local", {"kind": "local"})).run()
    monkeypatch.setattr(MLIPModel, "__init__", _refuse_model)
    on_ray = Search(_stable_stiff(tmp_path / "ray", {"kind": "ray", "workers": 2})).run()
    assert on_ray.last_generation == local.last_generation == 1
    populations = _populations_with_moduli(local)
    assert _populations_with_moduli(on_ray) == populations
    assert any(entry[3] is not None for generation in populations for entry in generation)


def _refuse_model(*args: object, **kwargs: object) -> None:
    raise AssertionError("the driver built an MLIP model")
