"""Driver time per candidate of the real engine as the run store grows (a long campaign).

For each store size N (default 1,000 / 10,000 / 30,000 candidates) a run folder is filled with N
earlier candidates: half of them SCORED (known MP-20 crystals of at most 20 atoms from the shipped
index, "relaxed" into themselves, e_above_hull from the index), half INVALID (as a real campaign
rejects many proposals), in generations of 200 with 16 survivors each. The last filled generation
holds the same 100 crystals (the index's first) at every size, so the new generations start from
the same parents and propose the same children; only the history behind them grows. `Search.resume`
then runs `--generations` more generations of `--children` builtin children with the real MLIP
held to `mlip.steps: 1` (cheap evaluations).

Reported per size:
- start-up: from `resume()` until the first new generation starts proposing (dedup index and
  discovery marker rebuilt from the store), s;
- driver time per child: the new generations' time minus the time spent inside the executor's
  `evaluate` (relaxation), divided by the children proposed, ms. It covers propose, check
  (validity, dedup), mark (known/new), select, metrics and every store read and write. Given as
  this process's CPU time (`time.process_time`, the number to compare on a shared machine, where
  other processes stretch wall time) and as wall time, over all new generations and in steady
  state (the generations after the first new one, which also pays one-time costs such as loading
  the substitution table).

    MATSEARCH_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_driver.py \
        [--sizes 1000 10000 30000] [--generations 3] [--children 32]

Writes benchmarks/results/driver.json (or `--out`) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import torch

from matsearch.candidate import Candidate, Novelty, Status
from matsearch.engine import Search
from matsearch.spec import dump_spec, parse_spec
from matsearch.store import RunStore
from matsearch.structures.known import KnownMaterials

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "driver.json"
FILL_GENERATION = 200  # candidates per filled generation
SURVIVORS = 16


class TimedExecutor:
    """The run's real executor, with the time spent inside `evaluate` summed (s)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0  # wall
        self.cpu_seconds = 0.0  # this process

    def evaluate(self, structures: Sequence, properties: Collection[str] = ()) -> Iterator:
        results = self.inner.evaluate(structures, properties)
        while True:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                item = next(results)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - started
                self.cpu_seconds += time.process_time() - cpu
            yield item

    def close(self) -> None:
        self.inner.close()


def make_spec(folder: Path, size: int, generations: int, children: int, elements: list[str]) -> dict:
    filled = math.ceil(size / FILL_GENERATION)
    return {
        "name": f"driver-{size}",
        "seed": 0,
        "output": str(folder),
        "chemistry": {"elements": elements, "max_atoms": 20, "max_elements": 5},
        "population_size": SURVIVORS,
        "children_per_generation": children,
        "generations": filled - 1 + generations,
        "mlip": {"steps": 1, "prerelax": None, "batch_size": children},
        "validity": {"charge_neutrality": False},
    }


def fill(store: RunStore, known: KnownMaterials, size: int) -> None:
    """`size` earlier candidates in generations of FILL_GENERATION, each generation completed."""
    table = known.table
    rows = table.index[table["n_sites"] <= 20].tolist()
    for start in range(0, size, FILL_GENERATION):
        generation = start // FILL_GENERATION
        batch = []
        for i in range(start, min(size, start + FILL_GENERATION)):
            row = rows[((i - (size - FILL_GENERATION)) // 2) % len(rows)]  # last generation: rows[:100]
            structure = known.structure(row)
            e_hull = float(table.at[row, "e_above_hull"])
            e_hull = 0.0 if math.isnan(e_hull) else e_hull
            c = Candidate(id=None, generation=generation, origin="builtin", operator="substitution")
            c.structure = structure
            if i % 2 == 0:
                c.status, c.relaxed, c.converged = Status.SCORED, structure, True
                c.energy_per_atom = float(table.at[row, "formation_energy_per_atom"])
                c.e_above_hull, c.scores = e_hull, {"e_above_hull": e_hull}
                c.novelty, c.known_id = Novelty.KNOWN, str(table.at[row, "material_id"])
            else:
                c.status, c.reason = Status.INVALID, "atoms closer than 0.5 of their covalent radii"
            batch.append(c)
        store.add(batch, proposed_generation=generation)
        scored = sorted((c for c in batch if c.status == Status.SCORED), key=lambda c: c.e_above_hull)
        store.complete_generation(generation, [c.id for c in scored[:SURVIVORS]], {})


def measure(folder: Path, size: int, generations: int, children: int) -> dict:
    known = KnownMaterials.load("mp20")
    elements = sorted({e for row in known.table["elements"] for e in row})
    spec = parse_spec(make_spec(folder, size, generations, children, elements))
    started = time.perf_counter()
    store = RunStore.create(spec.run_dir, dump_spec(spec), {})
    fill(store, known, size)
    store.close()
    fill_s = time.perf_counter() - started

    first_stage: list[tuple[float, float]] = []
    done: list[tuple[float, float, float, float]] = []  # wall, cpu, evaluate wall, evaluate cpu

    def on_progress(progress) -> None:
        if not first_stage and progress.stage == "proposing":
            first_stage.append((time.perf_counter(), time.process_time()))
        if progress.stage == "done":
            done.append((time.perf_counter(), time.process_time(), timed.seconds, timed.cpu_seconds))

    search = Search.from_run_dir(spec.run_dir, on_progress=on_progress)
    timed = TimedExecutor(search.executor)
    search._executor = timed  # the real executor, timed
    started, cpu = time.perf_counter(), time.process_time()
    run = search.resume()
    total_s, total_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    startup_s, startup_cpu_s = first_stage[0][0] - started, first_stage[0][1] - cpu
    new = [c for c in run.candidates() if c.generation >= math.ceil(size / FILL_GENERATION)]
    driver_s = total_s - startup_s - timed.seconds
    driver_cpu_s = total_cpu_s - startup_cpu_s - timed.cpu_seconds
    first_new = math.ceil(size / FILL_GENERATION)
    steady = [c for c in new if c.generation > first_new]
    (w0, c0, e0, ec0), (w1, c1, e1, ec1) = done[0], done[-1]
    return {
        "store_size": size,
        "fill_s": fill_s,
        "startup_s": startup_s,
        "startup_cpu_s": startup_cpu_s,
        "children": len(new),
        "evaluate_s": timed.seconds,
        "driver_s": driver_s,
        "driver_ms_per_child": 1000 * driver_s / max(1, len(new)),
        "driver_cpu_ms_per_child": 1000 * driver_cpu_s / max(1, len(new)),
        "steady_children": len(steady),
        "steady_driver_ms_per_child": 1000 * ((w1 - w0) - (e1 - e0)) / max(1, len(steady)),
        "steady_driver_cpu_ms_per_child": 1000 * ((c1 - c0) - (ec1 - ec0)) / max(1, len(steady)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--children", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows.append(measure(Path(tmp), size, args.generations, args.children))
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print("| store size | start-up CPU (wall), s | driver CPU (wall) ms/child, all | same, steady |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['store_size']:,} | {r['startup_cpu_s']:.1f} ({r['startup_s']:.0f}) | "
            f"{r['driver_cpu_ms_per_child']:.0f} ({r['driver_ms_per_child']:.0f}) | "
            f"{r['steady_driver_cpu_ms_per_child']:.0f} ({r['steady_driver_ms_per_child']:.0f}) |"
        )


if __name__ == "__main__":
    main()
