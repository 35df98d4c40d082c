"""How the cost of a search grows: relax throughput per worker, Ray scaling, and the driver's share.

Sample: MP-20 test crystals (``matsearch.data.load_mp20("test")``, rows sorted by material_id,
drawn with ``numpy.random.default_rng(seed)``) with exactly 8 atoms, turned into 8/16/32/64-atom
supercells, strained by a random symmetric strain (components up to 0.02) and rattled by
Gaussian noise of 0.05 Å per Cartesian component. Every timed relaxer runs with one torch thread
per worker (``--threads``) unless ``--device cuda``.

Parts (all measured in this one run; nothing is copied from elsewhere):

1. wire: bytes and encode+decode time of a structure and of a relax result, codec JSON (what
   RayExecutor sends) against a pickled pymatgen object.
2. atoms: time of one batched model evaluation (energy, forces, stress) per structure at a full
   batch (``--batch-atoms`` atoms), for 8-64 atoms per cell, from relaxations held to a fixed
   number of FIRE steps (fmax 1e-9 eV/Å so none converges early).
3. steps: FIRE steps to converge (fmax 0.05 eV/Å, at most 300) on rattled 8- and 32-atom cells.
4. population: 100 / 500 / 2,000 8-atom candidates: single-point energies of all of them, and
   the fixed-step relaxation of 100 and 500 (2,000 is extrapolated linearly from 500, which the
   atom-budget batching makes exact up to noise: said so in the output).
5. workers: RayExecutor on a local Ray (``--ray-cpus`` CPUs) with 1 and 2 workers, and
   LocalExecutor in-process, on the same fixed-step workload; startup time of Ray and workers,
   and the CPU time the workers used (psutil), so that Ray's own overhead can be told apart from
   cores taken by other processes on a shared machine.
6. batch composition: energies of the same structures relaxed in one batch, alone and in
   reversed order (max difference, eV/atom).
7. driver: the engine's per-candidate work in the driver process, on real BuiltinProposer children
   of a growing history: validity checks, dedup lookup and insert (exact StructureMatcher), store
   writes (one transaction per candidate, as the engine commits), hull scoring, result decoding,
   and the per-commit progress read of a whole generation.

    MATSEARCH_DATA_DIR=../shared/data python benchmarks/bench_scaling.py [--device cuda]

Writes benchmarks/results/scaling.json (or ``--out``) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import platform
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scaling.json"
SUPERCELLS = {8: (1, 1, 1), 16: (2, 1, 1), 32: (2, 2, 1), 64: (2, 2, 2)}
NEVER_CONVERGED_EV_PER_A = 1e-9  # fmax that holds every structure to the full step count


# --- sample ----------------------------------------------------------------------------------


def base_cells(n: int, seed: int) -> list[Structure]:
    """n distinct 8-atom MP-20 test crystals, drawn with `seed`."""
    from matsearch.data import load_mp20

    frame = load_mp20("test").sort_values("material_id").reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(frame))
    cells: list[Structure] = []
    for row in order:
        structure = Structure.from_str(frame["cif"].iloc[row], fmt="cif")
        if len(structure) == 8:
            cells.append(structure)
            if len(cells) == n:
                return cells
    raise RuntimeError(f"MP-20 test has fewer than {n} crystals with 8 atoms")


def perturbed(cells: list[Structure], n: int, atoms: int, rng: np.random.Generator) -> list[Structure]:
    """n supercells with `atoms` atoms (cycling through `cells`), strained and rattled."""
    out = []
    for k in range(n):
        structure = cells[k % len(cells)].make_supercell(SUPERCELLS[atoms], in_place=False)
        eps = rng.uniform(-0.02, 0.02, (3, 3))
        lattice = Lattice(structure.lattice.matrix @ (np.eye(3) + 0.5 * (eps + eps.T)))
        cart = structure.frac_coords @ lattice.matrix + rng.normal(0.0, 0.05, (len(structure), 3))
        out.append(Structure(lattice, structure.species, cart, coords_are_cartesian=True))
    return out


# --- helpers ---------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_fixed_steps(model, structures, steps: int, batch_atoms: int, device: str) -> dict:
    """Relax held to `steps` FIRE steps; time per structure-evaluation (s)."""
    from matsearch.mlip import RelaxSettings, relax

    synchronize(device)
    started = time.perf_counter()
    results = relax(
        structures,
        model,
        RelaxSettings(fmax=NEVER_CONVERGED_EV_PER_A, steps=steps, batch_atoms=batch_atoms, timeout_s=None),
    )
    synchronize(device)
    wall = time.perf_counter() - started
    evaluations = sum(r.steps + 1 for r in results)
    return {
        "structures": len(structures),
        "steps": steps,
        "wall_s": wall,
        "evaluations": evaluations,
        "failed": sum(r.error is not None for r in results),
        "s_per_structure_evaluation": wall / evaluations,
    }


# --- parts -----------------------------------------------------------------------------------


def bench_wire(model, cells: list[Structure], rng: np.random.Generator) -> list[dict]:
    from matsearch.evaluation.ray_executor import evaluation_from_wire, evaluation_to_wire
    from matsearch.mlip import RelaxSettings, relax
    from matsearch.results import Evaluation
    from matsearch.structures.codec import structure_from_json, structure_to_json

    rows = []
    for atoms in SUPERCELLS:
        structures = perturbed(cells, 16, atoms, rng)
        results = relax(
            structures, model, RelaxSettings(fmax=NEVER_CONVERGED_EV_PER_A, steps=1, timeout_s=None)
        )

        def cost(encode, decode, items):
            started = time.perf_counter()
            blobs = [pickle.dumps(encode(x), protocol=5) for x in items]
            middle = time.perf_counter()
            for blob in blobs:
                decode(pickle.loads(blob))
            done = time.perf_counter()
            n = len(items)
            return np.mean([len(b) for b in blobs]), (middle - started) / n, (done - middle) / n

        for what, items, json_pair in (
            ("structure", structures, (structure_to_json, structure_from_json)),
            ("result", [Evaluation(r) for r in results], (evaluation_to_wire, evaluation_from_wire)),
        ):
            for fmt, pair in (("json", json_pair), ("pickle", (lambda x: x, lambda x: x))):
                runs = [cost(*pair, items) for _ in range(9)]  # fastest of 9: least disturbed
                rows.append(
                    {
                        "atoms": atoms,
                        "what": what,
                        "format": fmt,
                        "bytes": float(runs[0][0]),
                        "encode_ms": min(r[1] for r in runs) * 1e3,
                        "decode_ms": min(r[2] for r in runs) * 1e3,
                    }
                )
    return rows


def bench_atoms(model, cells, rng, batch_atoms: int, steps: int, device: str) -> list[dict]:
    rows = []
    for atoms in SUPERCELLS:
        structures = perturbed(cells, max(1, batch_atoms // atoms), atoms, rng)
        row = timed_fixed_steps(model, structures, steps, batch_atoms, device)
        rows.append({"atoms": atoms, **row})
    return rows


def bench_steps(model, cells, rng, batch_atoms: int, device: str) -> list[dict]:
    from matsearch.mlip import RelaxSettings, relax

    rows = []
    for atoms, n in ((8, 16), (32, 8)):
        structures = perturbed(cells, n, atoms, rng)
        synchronize(device)
        started = time.perf_counter()
        results = relax(
            structures, model, RelaxSettings(fmax=0.05, steps=300, batch_atoms=batch_atoms, timeout_s=None)
        )
        synchronize(device)
        wall = time.perf_counter() - started
        ok = [r for r in results if r.error is None]
        rows.append(
            {
                "atoms": atoms,
                "structures": n,
                "wall_s": wall,
                "converged": sum(r.converged for r in results),
                "failed": len(results) - len(ok),
                "mean_steps": float(np.mean([r.steps for r in ok])),
                "max_steps": max(r.steps for r in ok),
            }
        )
    return rows


def bench_population(relaxer, model, cells, rng, batch_atoms: int, steps: int, device: str):
    rows = []
    for n in (100, 500, 2000):
        structures = perturbed(cells, n, 8, rng)
        synchronize(device)
        started = time.perf_counter()
        energies = relaxer.single_point(structures)
        synchronize(device)
        single = time.perf_counter() - started
        row = {
            "candidates": n,
            "single_point_wall_s": single,
            "single_point_per_min": 60 * n / single,
            "single_point_nan": int(np.isnan(energies).sum()),
        }
        if n <= 500:
            fixed = timed_fixed_steps(model, structures, steps, batch_atoms, device)
            row |= {"relax_measured": True, "relax_steps": steps, "relax_wall_s": fixed["wall_s"]}
        else:
            per_candidate = rows[-1]["relax_wall_s"] / rows[-1]["candidates"]
            row |= {"relax_measured": False, "relax_steps": steps, "relax_wall_s": per_candidate * n}
        row["relax_per_min"] = 60 * n / row["relax_wall_s"]
        rows.append(row)
    return rows


def bench_workers(cells, rng, ray_cpus: int, steps: int, device: str) -> dict:
    """Wall time and the workers' CPU time (user + system, s) on one fixed-step workload."""
    import psutil
    import ray

    from matsearch.evaluation.evaluators import build_evaluator
    from matsearch.evaluation.local import LocalExecutor
    from matsearch.evaluation.ray_executor import RayExecutor
    from matsearch.spec import ExecutorSpec, MLIPSpec, Scoring

    structures = perturbed(cells, 96, 8, rng)
    mlip = MLIPSpec(
        fmax=NEVER_CONVERGED_EV_PER_A,
        steps=steps,
        batch_size=16,
        timeout_s=3600,
        device=None if device == "cpu" else device,
    )
    evaluations = len(structures) * (steps + 1)
    started = time.perf_counter()
    ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False)
    out: dict = {"ray_init_s": time.perf_counter() - started, "structures": len(structures)}
    out["steps"] = steps
    rows = []
    try:
        local = LocalExecutor(build_evaluator(mlip, Scoring()), chunk_size=mlip.batch_size)
        local.evaluator.single_point(structures[:2])  # load the model outside the timing
        cpu = time.process_time()
        started = time.perf_counter()
        n = sum(1 for _ in local.evaluate(structures))
        wall = time.perf_counter() - started
        rows.append(
            {
                "executor": "local",
                "workers": 1,
                "wall_s": wall,
                "worker_cpu_s": time.process_time() - cpu,
                "yielded": n,
                "load_avg_1min": os.getloadavg()[0],
            }
        )
        for workers in (1, 2):
            gpus = 0.0 if device == "cpu" else 1.0 / workers  # workers share one GPU
            spec = ExecutorSpec(kind="ray", workers=workers, gpus_per_worker=gpus)
            started = time.perf_counter()
            executor = RayExecutor(spec, mlip, Scoring())
            processes = [psutil.Process(w.pid) for w in executor.workers(timeout_s=600)]
            ready = time.perf_counter() - started
            cpu = sum(sum(p.cpu_times()[:2]) for p in processes)
            started = time.perf_counter()
            n = sum(1 for _ in executor.evaluate(structures))
            wall = time.perf_counter() - started
            cpu = sum(sum(p.cpu_times()[:2]) for p in processes) - cpu
            executor.close()
            rows.append(
                {
                    "executor": "ray",
                    "workers": workers,
                    "startup_s": ready,
                    "wall_s": wall,
                    "worker_cpu_s": cpu,
                    "yielded": n,
                    "load_avg_1min": os.getloadavg()[0],
                }
            )
    finally:
        ray.shutdown()
    for row in rows:
        row["candidates_per_min"] = 60 * len(structures) / row["wall_s"]
        row["candidates_per_worker_cpu_min"] = 60 * len(structures) / row["worker_cpu_s"]
        row["s_per_structure_evaluation"] = row["wall_s"] / evaluations
    out["rows"] = rows
    return out


def bench_batch_composition(model, cells, rng) -> dict:
    """The same 16 structures relaxed (fmax 0.05 eV/Å, 60 steps) together, alone, reversed."""
    from functools import partial

    from matsearch.mlip import RelaxSettings, relax

    run = partial(relax, model=model, settings=RelaxSettings(fmax=0.05, steps=60, timeout_s=None))
    structures = perturbed(cells, 16, 8, rng)
    together = run(structures)
    alone = [run([s])[0] for s in structures]
    reversed_ = run(structures[::-1])[::-1]
    diffs, same_steps = [], 0
    for a, b, c in zip(together, alone, reversed_, strict=True):
        diffs += [abs(a.energy_per_atom - b.energy_per_atom)]
        diffs += [abs(a.energy_per_atom - c.energy_per_atom)]
        same_steps += a.steps == b.steps == c.steps
    return {
        "structures": len(structures),
        "max_abs_diff_ev_per_atom": max(diffs),
        "mean_abs_diff_ev_per_atom": float(np.mean(diffs)),
        "identical_fraction": float(np.mean([d == 0.0 for d in diffs])),
        "same_step_count": same_steps,
    }


DRIVER_SCENARIOS = {
    # generate: 7 elements, up to 3 per crystal; children spread over many formulas
    "broad": {
        "name": "driver-broad",
        "chemistry": {
            "elements": ["Li", "Na", "K", "Mg", "O", "S", "Cl"],
            "max_atoms": 16,
            "max_elements": 3,
        },
    },
    # crystal structure prediction of MgO: every child has the same formula (worst case for dedup)
    "csp-MgO": {
        "name": "driver-csp",
        "chemistry": {"elements": ["Mg", "O"], "max_atoms": 12},
        "task": {"kind": "csp", "target": "MgO"},
    },
}


def bench_driver(scenario: dict, history: int, relaxer, rng: np.random.Generator) -> dict:
    """The driver's per-candidate work as the history grows, on real proposer children.

    Mirrors the engine's order: store.add of a generation, then per child validity, dedup
    lookup (+ insert when new) and one store transaction, then per relaxed child result
    decoding, hull scoring and one store transaction. Parents of each generation are drawn from
    the seeds and the children kept so far. Relax results are single-point energies of the
    proposed structures (the driver's cost does not depend on how they were relaxed).
    """
    from matsearch.candidate import Candidate, Status
    from matsearch.evaluation.ray_executor import evaluation_from_wire, evaluation_to_wire
    from matsearch.proposers.builtin import BuiltinProposer
    from matsearch.proposing import chemistry_limits, to_candidate
    from matsearch.results import Evaluation, RelaxResult
    from matsearch.scoring.hull import HullReference
    from matsearch.scoring.objectives import apply_relax_result
    from matsearch.spec import dump_spec, parse_spec
    from matsearch.store import RunStore
    from matsearch.structures.dedup import DuplicateIndex
    from matsearch.structures.known import KnownMaterials
    from matsearch.structures.seeds import initial_population
    from matsearch.structures.validity import check_validity

    spec = parse_spec(scenario)
    limits = chemistry_limits(spec)
    hull = HullReference.from_registry("mp20-subset")
    proposer = BuiltinProposer()
    dedup = DuplicateIndex()
    stages = ("propose", "validity", "dedup", "store_add", "store_check", "score", "store_relax")
    timings: dict[str, list[float]] = {k: [] for k in stages}
    dedup_by_size: list[tuple[int, float]] = []
    statuses: Counter = Counter()
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore.create(Path(folder) / "run", dump_spec(spec), {})
        pool = [
            Candidate(id=-i - 1, generation=0, origin="mp20", operator="seed", structure=s)
            for i, (s, _) in enumerate(initial_population(limits, 32, KnownMaterials.load()))
        ]
        generation = 0
        while sum(statuses.values()) < history:
            generation += 1
            k = min(16, len(pool))
            parents = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
            started = time.perf_counter()
            proposals = proposer.propose(parents, 100, limits, rng)
            timings["propose"].append((time.perf_counter() - started) / len(proposals))
            children = [to_candidate(generation, p) for p in proposals if p.structure is not None]
            started = time.perf_counter()
            store.add(children, proposed_generation=generation)
            timings["store_add"].append((time.perf_counter() - started) / len(children))
            valid = []
            for child in children:
                started = time.perf_counter()
                reason = check_validity(child.structure, limits)
                middle = time.perf_counter()
                timings["validity"].append(middle - started)
                if reason is None:
                    size = len(dedup)
                    match = dedup.find(child.structure)
                    if match is None:
                        dedup.add(child.id, child.structure)
                    elapsed = time.perf_counter() - middle
                    timings["dedup"].append(elapsed)
                    dedup_by_size.append((size, elapsed))
                    if match is None:
                        child.accept()
                    else:
                        child.reject_duplicate(match)
                else:
                    child.reject(reason)
                statuses[child.status.value] += 1
                started = time.perf_counter()
                store.update([child])
                timings["store_check"].append(time.perf_counter() - started)
                if child.status == Status.VALID:
                    valid.append(child)
            energies = relaxer.single_point([c.structure for c in valid])
            for child, energy in zip(valid, energies, strict=True):
                if not np.isfinite(energy):
                    continue
                wire = evaluation_to_wire(Evaluation(RelaxResult(child.structure, energy, energy, False, 0)))
                started = time.perf_counter()
                apply_relax_result(child, evaluation_from_wire(wire).relax, hull)
                middle = time.perf_counter()
                store.update([child])
                timings["store_relax"].append(time.perf_counter() - middle)
                timings["score"].append(middle - started)
            pool += [c for c in valid if c.status == Status.SCORED]
        progress_reads = []
        for n_children in (100, 500, 2000):
            generation += 1
            copies = [
                Candidate(
                    id=None,
                    generation=generation,
                    origin="bench",
                    operator="copy",
                    structure=pool[k % len(pool)].structure,
                )
                for k in range(n_children)
            ]
            store.add(copies, proposed_generation=generation)
            started = time.perf_counter()
            store.candidates(generation=generation)
            progress_reads.append(
                {"children": n_children, "read_generation_s": time.perf_counter() - started}
            )
        store.close()
    sizes = np.array([s for s, _ in dedup_by_size], dtype=float)
    costs = np.array([c for _, c in dedup_by_size])
    edges = np.linspace(0.0, sizes.max() + 1.0, 6)
    windows = []
    for lo, hi in itertools.pairwise(edges):
        mask = (sizes >= lo) & (sizes < hi)
        if mask.any():
            windows.append(
                {
                    "index_size_from": int(lo),
                    "index_size_to": int(hi),
                    "lookups": int(mask.sum()),
                    "mean_ms": float(costs[mask].mean() * 1e3),
                    "p95_ms": float(np.percentile(costs[mask], 95) * 1e3),
                }
            )
    slope, intercept = np.polyfit(sizes, costs, 1)
    means = {k: float(np.mean(v)) if v else 0.0 for k, v in timings.items()}
    return {
        "history": int(sum(statuses.values())),
        "generations": generation - len(progress_reads),
        "statuses": dict(statuses),
        "dedup_index_size": len(dedup),
        "mean_s": means,
        "dedup_growth": windows,
        "dedup_linear_fit": {
            "intercept_ms": float(intercept * 1e3),
            "ms_per_indexed_structure": float(slope * 1e3),
        },
        "store_writes_per_s": 1.0 / means["store_check"],
        "progress_read": progress_reads,
    }


# --- report ----------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    lines = [f"# scaling ({result['machine']['device']}, load {result['machine']['load_avg']})", ""]
    lines += ["## wire (per item)", "", "| atoms | what | format | bytes | encode ms | decode ms |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in result["wire"]:
        lines.append(
            f"| {r['atoms']} | {r['what']} | {r['format']} | {r['bytes']:.0f} | "
            f"{r['encode_ms']:.3f} | {r['decode_ms']:.3f} |"
        )
    lines += ["", "## atoms per cell (full batch, fixed steps, one worker)", ""]
    lines += ["| atoms | structures/batch | ms per structure-evaluation | ms per atom-evaluation |"]
    lines += ["|---|---|---|---|"]
    for r in result["atoms"]:
        per = r["s_per_structure_evaluation"] * 1e3
        lines.append(f"| {r['atoms']} | {r['structures']} | {per:.2f} | {per / r['atoms']:.3f} |")
    lines += ["", "## steps to converge (fmax 0.05 eV/Å, cap 300)", ""]
    lines += ["| atoms | structures | converged | failed | mean steps | max | wall s |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in result["steps"]:
        lines.append(
            f"| {r['atoms']} | {r['structures']} | {r['converged']} | {r['failed']} | "
            f"{r['mean_steps']:.0f} | {r['max_steps']} | {r['wall_s']:.1f} |"
        )
    lines += ["", "## population size (8-atom candidates, one worker)", ""]
    lines += ["| candidates | single-point /min | fixed-step relax /min | relax measured |"]
    lines += ["|---|---|---|---|"]
    for r in result["population"]:
        lines.append(
            f"| {r['candidates']} | {r['single_point_per_min']:.0f} | {r['relax_per_min']:.0f} "
            f"({r['relax_steps']} steps) | {'yes' if r['relax_measured'] else 'extrapolated'} |"
        )
    w = result["workers"]
    lines += ["", f"## workers ({w['structures']} structures, {w['steps']} fixed steps)", ""]
    lines += [
        "| executor | workers | startup s | wall s | candidates/min | speed-up vs 1 | "
        "worker CPU s | candidates/worker-CPU-min | load |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    one = next(r for r in w["rows"] if r["executor"] == "ray" and r["workers"] == 1)["wall_s"]
    for r in w["rows"]:
        lines.append(
            f"| {r['executor']} | {r['workers']} | {r.get('startup_s', 0):.1f} | "
            f"{r['wall_s']:.1f} | {r['candidates_per_min']:.0f} | {one / r['wall_s']:.2f} | "
            f"{r['worker_cpu_s']:.1f} | {r['candidates_per_worker_cpu_min']:.0f} | "
            f"{r['load_avg_1min']:.1f} |"
        )
    b = result["batch_composition"]
    lines += [
        "",
        f"batch composition: max |ΔE| {b['max_abs_diff_ev_per_atom']:.2e} eV/atom, "
        f"{b['identical_fraction']:.0%} identical, same step count {b['same_step_count']}/"
        f"{b['structures']}",
    ]
    for name, d in result["driver"].items():
        fit = d["dedup_linear_fit"]
        lines += [
            "",
            f"## driver per candidate, {name} (history {d['history']}: {d['statuses']}; dedup "
            f"{fit['intercept_ms']:.1f} ms + {fit['ms_per_indexed_structure']:.4f} ms x index size)",
            "",
        ]
        lines += ["| stage | mean ms |", "|---|---|"]
        lines += [f"| {k} | {v * 1e3:.2f} |" for k, v in d["mean_s"].items()]
        lines += ["", "| dedup index size | lookups | mean ms | p95 ms |", "|---|---|---|---|"]
        for r in d["dedup_growth"]:
            lines.append(
                f"| {r['index_size_from']}–{r['index_size_to']} | {r['lookups']} | "
                f"{r['mean_ms']:.1f} | {r['p95_ms']:.1f} |"
            )
        lines += ["", "| children in generation | read whole generation s |", "|---|---|"]
        lines += [f"| {r['children']} | {r['read_generation_s']:.3f} |" for r in d["progress_read"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker")
    parser.add_argument("--batch-atoms", type=int, default=1024, help="atom budget per batch")
    parser.add_argument("--steps", type=int, default=4, help="fixed FIRE steps in parts 2, 4")
    parser.add_argument("--worker-steps", type=int, default=10, help="fixed steps in part 5")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--history", type=int, default=2000, help="children, part 7 broad")
    parser.add_argument("--csp-history", type=int, default=1000, help="children, part 7 CSP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("MATSEARCH_DATA_DIR", str(REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import ray

    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
    from matsearch.relax_defaults import RelaxSettings

    began = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    cells = base_cells(32, args.seed)
    relaxer = MLIPRelaxer(
        device=args.device, settings=RelaxSettings(timeout_s=None, batch_atoms=args.batch_atoms)
    )
    model = relaxer.model
    relaxer.single_point(perturbed(cells, 4, 8, rng))  # warm up
    load_before = os.getloadavg()
    result: dict = {}
    parts = {
        "wire": lambda: bench_wire(model, cells, rng),
        "atoms": lambda: bench_atoms(model, cells, rng, args.batch_atoms, args.steps, args.device),
        "steps": lambda: bench_steps(model, cells, rng, args.batch_atoms, args.device),
        "population": lambda: bench_population(
            relaxer, model, cells, rng, args.batch_atoms, args.steps, args.device
        ),
        "batch_composition": lambda: bench_batch_composition(model, cells, rng),
        "workers": lambda: bench_workers(cells, rng, args.ray_cpus, args.worker_steps, args.device),
        "driver": lambda: {
            name: bench_driver(scenario, history, relaxer, rng)
            for (name, scenario), history in zip(
                DRIVER_SCENARIOS.items(), (args.history, args.csp_history), strict=True
            )
        },
    }
    seconds = {}
    for name, part in parts.items():
        started = time.perf_counter()
        result[name] = part()
        seconds[name] = time.perf_counter() - started
        print(f"[{name}: {seconds[name]:.0f} s]", flush=True)
    result["machine"] = {
        "device": args.device if args.device != "cpu" else f"cpu ({platform.processor() or 'x86'})",
        "cpu_count": os.cpu_count(),
        "threads_per_worker": args.threads,
        "load_avg": f"{load_before[0]:.1f}→{os.getloadavg()[0]:.1f}",
        "torch": torch.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }
    result["settings"] = vars(args) | {"out": str(args.out)}
    result["part_seconds"] = seconds
    result["total_s"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
