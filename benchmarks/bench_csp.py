"""CSP benchmark: does the search find the known ground state of MP-20 test crystals from scratch?

Panel (fixed rule, fixed seed): MP-20 test crystals (from the shipped known-materials index) with
at most 8 atoms in the primitive cell, two or three elements, on the DFT hull (e_above_hull ≤ 1e-4
eV/atom); 20 drawn with numpy seed 0, sorted by id. CSP runs never seed known structures, so the
answer is never handed in. Each target gets the same spec: random starts (every formula-unit
count up to 8 atoms), builtin operators, energy per atom minimised, population 10, 14 children for
10 generations: at most 150 proposals, hence at most 150 relaxations.

Reported per target, and summed over the panel:
- found (the success measure, CSP's "match rate"): some relaxed candidate matches the known
  structure (StructureMatcher, default tolerances) within the budget; with the relaxations spent
  until the first match (every structure sent to the MLIP counts, including those that relaxed
  into an earlier candidate's structure and failed ones);
- lowest is known: the run's lowest-energy relaxed structure is the known one;
- the model's verdict: the known structure relaxed by the same MLIP with the run's settings, and
  the gap E(known, relaxed) − E(lowest found) in meV/atom. A positive gap means the MLIP puts a
  structure the search found below the known one, so no search could make "lowest is known" true;
  "search reached the known energy" counts runs whose lowest energy is at most 1 meV/atom above it.
Writes benchmarks/results/csp.json (or --out).

    python benchmarks/bench_csp.py [--targets 20] [--jobs 2] [--mode templates|random|legacy]
                                   [--model chgnet-0.3.0]

`--mode templates` (the default) seeds generation 0 from decorated templates of the target's
stoichiometry type (task.template_share, default 0.75) and takes a share of later children from
them (task.template_operator_share); `random` sets both shares to 0: random starts and builtin
operators only, as before templates existed. `legacy` leaves both keys out, so that an older
checkout (PYTHONPATH=<old checkout>) runs. `--model` is the run's mlip.model (default: the
package default); the known structure is relaxed by the same model.
`--generations 0` stops after generation 0 (population_size relaxations per target): where the
seeds alone find the known structure, at a fifteenth of the cost.
`--jobs` runs targets in parallel processes (one torch thread each).
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


def run_target(
    target: tuple[str, str, str], folder: str, seed: int, mode: str, model: str, generations: int
) -> dict:
    """One CSP search; runs in its own process."""
    import torch

    torch.set_num_threads(1)
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from matsearch import Search, Status
    from matsearch.mlip import RelaxSettings, load_model, relax
    from matsearch.spec import MLIPSpec

    material_id, formula, cif = target
    cif_path = Path(folder) / f"{material_id}.cif"
    cif_path.write_text(cif)
    elements = sorted(_elements(formula))
    task = {"kind": "csp", "target": formula, "known_structure": str(cif_path)}
    if mode == "random":
        task |= {"template_share": 0.0, "template_operator_share": 0.0}
    spec = {
        "name": f"csp-{material_id}",
        "seed": seed,
        "output": folder,
        "chemistry": {"elements": elements, "max_atoms": MAX_ATOMS},
        "task": task,
        **BUDGET,
        "generations": generations,
        "proposers": [
            {"kind": "builtin", "weights": {"strain": 0.3, "swap": 0.1, "crossover": 0.3, "random": 0.3}}
        ],
        "objectives": [{"name": "energy_per_atom", "direction": "min"}],
        **({} if model == "default" else {"mlip": {"model": model}}),
    }
    started = time.perf_counter()
    run = Search(spec).run()
    wall = time.perf_counter() - started
    known = Structure.from_str(cif, fmt="cif")
    sent = sorted(
        (c for c in run.candidates() if c.relaxed is not None or c.status == Status.FAILED),
        key=lambda c: c.id,
    )
    scored = [c for c in sent if c.status == Status.SCORED]
    lowest = min(scored, key=lambda c: (c.energy_per_atom, c.id))
    matcher = StructureMatcher()
    first = next((k for k, c in enumerate(sent) if c.relaxed and matcher.fit(known, c.relaxed)), None)
    settings = MLIPSpec()
    known_relaxed = relax(
        [known], load_model(model), RelaxSettings(fmax=settings.fmax, steps=settings.steps)
    )[0]
    gap = 1000 * (known_relaxed.energy_per_atom - lowest.energy_per_atom)
    return {
        "material_id": material_id,
        "target": formula,
        "relaxations": len(sent),
        "found": first is not None,
        "relaxations_to_first_match": None if first is None else first + 1,
        "found_in_generation": None if first is None else sent[first].generation,
        "found_by": None if first is None else _lineage(sent[first], run),
        "lowest_by": _lineage(lowest, run),
        "template_seeds": sum(c.operator == "template" for c in run.candidates()),
        "lowest_is_known": bool(matcher.fit(known, lowest.relaxed)),
        "lowest_energy_per_atom": lowest.energy_per_atom,
        "known_relaxed_energy_per_atom": known_relaxed.energy_per_atom,
        "gap_mev_per_atom": round(gap, 1),
        "search_reached_known_energy": gap >= -1.0,
        "wall_time_s": round(wall, 1),
    }


def _lineage(candidate, run) -> str:
    """'template <id> <formula>' when the candidate is a template or descends from one, else its
    operator."""
    by_id = {c.id: c for c in run.candidates()}
    stack, seen = [candidate], set()
    while stack:
        c = stack.pop()
        if "template_id" in c.extra:
            return f"template {c.extra['template_id']} {c.extra['template_formula']}"
        seen.add(c.id)
        stack += [by_id[p] for p in c.parents if p in by_id and p not in seen]
    return candidate.operator


def _elements(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {el.symbol for el in Composition(formula).elements}


def _summary(rows: list[dict], args: argparse.Namespace) -> dict:
    """Panel rates over the targets done so far."""
    n = len(rows)
    found = [r for r in rows if r["found"]]
    return {
        "date": date.today().isoformat(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "budget": BUDGET | {"generations": args.generations},
        "mode": args.mode,
        "model": args.model,
        "targets_done": n,
        "success_rate": len(found) / n,
        "lowest_is_known_rate": sum(r["lowest_is_known"] for r in rows) / n,
        "search_reached_known_energy_rate": sum(r["search_reached_known_energy"] for r in rows) / n,
        "mean_relaxations": float(np.mean([r["relaxations"] for r in rows])),
        "mean_relaxations_to_first_match": float(np.mean([r["relaxations_to_first_match"] for r in found]))
        if found
        else None,
        "runs": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--skip", type=int, default=0, help="leave out the first SKIP targets of the panel")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("templates", "random", "legacy"), default="templates")
    parser.add_argument("--model", default="default", help="mlip.model of every run")
    parser.add_argument(
        "--generations",
        type=int,
        default=BUDGET["generations"],
        help="generations after generation 0 (0: generation 0 only, population_size relaxations)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "csp.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    targets = panel(args.targets)[args.skip :]
    rows = []
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(args.jobs) as pool:
        n = len(targets)
        same = [[value] * n for value in (folder, args.seed, args.mode, args.model, args.generations)]
        runs = pool.map(run_target, targets, *same)
        for row in runs:  # in panel order; the file is rewritten after each, so a stopped run keeps its rows
            rows.append(row)
            summary = _summary(rows, args)
            partial = args.out.with_suffix(".part")
            partial.write_text(json.dumps(summary, indent=2))
            partial.replace(args.out)  # readers never see half a file
    found = [r for r in rows if r["found"]]
    n = len(rows)
    print(
        "| target | id | found after (relaxations) | lowest is known "
        "| E(known relaxed) − E(lowest), meV/atom | found by | lowest from | relaxations | wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['target']} | {r['material_id']} | {r['relaxations_to_first_match'] or 'not found'} | "
            f"{'yes' if r['lowest_is_known'] else 'no'} | {r['gap_mev_per_atom']:+.1f} | "
            f"{r['found_by'] or '—'} | {r['lowest_by']} | {r['relaxations']} | {r['wall_time_s']} |"
        )
    print(
        f"found {len(found)}/{n} = {100 * summary['success_rate']:.0f} %; lowest is known "
        f"{100 * summary['lowest_is_known_rate']:.0f} %; search reached the known structure's MLIP energy "
        f"{100 * summary['search_reached_known_energy_rate']:.0f} %; mean relaxations "
        f"{summary['mean_relaxations']:.0f}, to the first match {summary['mean_relaxations_to_first_match']}"
    )


if __name__ == "__main__":
    main()
