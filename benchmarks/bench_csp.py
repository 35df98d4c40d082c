"""CSP benchmark: does the search find the known ground state of MP-20 test crystals from scratch?

Panel (fixed rule, fixed seed): MP-20 test crystals (from the shipped known-materials index) with
at most 8 atoms in the primitive cell, two or three elements, on the DFT hull (e_above_hull ≤ 1e-4
eV/atom); 20 drawn with numpy seed 0, sorted by id. CSP runs never seed known structures, so the
answer is never handed in. Each target gets the same spec: random starts (every formula-unit
count up to 8 atoms), builtin operators, energy per atom minimised, population 10, 14 children for
10 generations: at most 150 proposals, hence at most 150 relaxations.

Success: the lowest-energy relaxed structure of the run matches the known one (StructureMatcher,
default tolerances). Also reported: the first generation in which any candidate matched, and the
relaxations spent. Writes benchmarks/results/csp.json.

    python benchmarks/bench_csp.py [--targets 20] [--jobs 2]

`--jobs` runs targets in parallel processes (one torch thread each). The searches use only spec
keys that older versions know, so PYTHONPATH=<old checkout> measures a "before".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_ATOMS = 8
PANEL_FILE = ROOT / "benchmarks" / "results" / "csp_panel.json"
BUDGET = {"population_size": 10, "children_per_generation": 14, "generations": 10}


def panel(n: int) -> list[tuple[str, str, str]]:
    """(material_id, reduced formula, CIF text) of the `n` targets, kept in PANEL_FILE once drawn so
    that older versions (which lack the known-materials index) run the same panel."""
    if PANEL_FILE.is_file():
        stored = json.loads(PANEL_FILE.read_text())
        if len(stored) >= n:
            return [tuple(t) for t in stored[:n]]
    from matsearch.structures.known import KnownMaterials

    known = KnownMaterials.load()
    table = known.table
    fits = (
        (table["split"] == "test")
        & (table["n_sites"] <= MAX_ATOMS)
        & table["elements"].map(lambda els: 2 <= len(els) <= 3)
        & (table["e_above_hull"] <= 1e-4)
    )
    rows = np.random.default_rng(0).choice(table.index[fits], size=n, replace=False)
    rows = sorted(rows, key=lambda r: table.at[r, "material_id"])
    targets = [
        (table.at[r, "material_id"], table.at[r, "reduced_formula"], known.structure(int(r)).to(fmt="cif"))
        for r in rows
    ]
    PANEL_FILE.write_text(json.dumps(targets, indent=1))
    return targets


def run_target(target: tuple[str, str, str], folder: str, seed: int) -> dict:
    """One CSP search; runs in its own process."""
    import torch

    torch.set_num_threads(1)
    from matsearch import Search, Status

    material_id, formula, cif = target
    cif_path = Path(folder) / f"{material_id}.cif"
    cif_path.write_text(cif)
    elements = sorted(_elements(formula))
    spec = {
        "name": f"csp-{material_id}",
        "seed": seed,
        "output": folder,
        "chemistry": {"elements": elements, "max_atoms": MAX_ATOMS},
        "task": {"kind": "csp", "target": formula, "known_structure": str(cif_path)},
        **BUDGET,
        "proposers": [
            {"kind": "builtin", "weights": {"strain": 0.3, "swap": 0.1, "crossover": 0.3, "random": 0.3}}
        ],
        "objectives": [{"name": "energy_per_atom", "direction": "min"}],
    }
    started = time.perf_counter()
    run = Search(spec).run()
    metrics = run.generation_metrics()
    last = metrics[max(metrics)]
    found = [g for g, m in metrics.items() if m.get("csp_match_id") is not None]
    return {
        "material_id": material_id,
        "target": formula,
        "relaxations": len(run.candidates(Status.SCORED)) + len(run.candidates(Status.FAILED)),
        "success": bool(last.get("csp_lowest_matches_known")),
        "found_in_generation": found[0] if found else None,
        "match_rmsd": last.get("csp_match_rmsd"),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }


def _elements(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {el.symbol for el in Composition(formula).elements}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "csp.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    targets = panel(args.targets)
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_target, targets, [folder] * len(targets), [args.seed] * len(targets)))
    successes = sum(r["success"] for r in rows)
    summary = {
        "date": date.today().isoformat(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "budget": BUDGET,
        "success_rate": successes / len(rows),
        "mean_relaxations": float(np.mean([r["relaxations"] for r in rows])),
        "runs": rows,
    }
    args.out.write_text(json.dumps(summary, indent=2))
    print("| target | id | success | found in gen | RMSD | relaxations | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['target']} | {r['material_id']} | {r['success']} | {r['found_in_generation']} | "
            f"{r['match_rmsd'] if r['match_rmsd'] is None else round(r['match_rmsd'], 4)} | "
            f"{r['relaxations']} | {r['wall_time_s']} |"
        )
    print(f"success {successes}/{len(rows)} = {100 * summary['success_rate']:.0f} %, "
          f"mean relaxations {summary['mean_relaxations']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
