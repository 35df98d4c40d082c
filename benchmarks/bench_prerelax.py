"""Two fidelities in one relaxation: the fast CHGNet-architecture model first, the accurate one
finishing, against the accurate model alone (``mlip.prerelax``).

Two samples, each relaxed by every mode with FIRE + Frechet cell filter (fmax 0.05 eV/Å, 300 steps):

- ``rattled``: ``--n`` MP-20 test structures, rattled by 0.1 Å and strained by up to ±4 % (near a
  minimum, like the children of the strain and substitution operators);
- ``random``: ``--n`` random symmetric structures (pyxtal) of MP-20 test compositions of at most
  8 atoms (far from any minimum, like CSP's random starts).

Modes: the accurate model alone, and prerelaxed by the fast model to each ``--handover`` fmax.
Reported per mode: wall and CPU seconds, optimiser steps, relaxations that fell into a hole of the
model (formation energy below −5 eV/atom: scoring rejects them as unphysical), and agreement with
the accurate-only relaxation where both are physical: final energy per atom (MAE and worst,
eV/atom), and the stable (e_hull ≤ 0) and metastable (e_hull ≤ 0.1 eV/atom) calls against the
shipped hull.

    python benchmarks/bench_prerelax.py [--accurate sevennet-0] [--fast chgnet-0.3.0] [--n 24]

Writes benchmarks/results/prerelax.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Composition, Structure

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_relax import load_sample  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "prerelax.json"


def random_sample(n: int, seed: int) -> list[Structure]:
    """Random symmetric crystals of MP-20 test compositions with at most 8 atoms."""
    from matsearch.data import load_mp20
    from matsearch.structures.random_structures import random_structure

    frame = load_mp20("test").sort_values("material_id")
    formulas = sorted({f for f in frame["pretty_formula"] if Composition(f).num_atoms <= 8})
    rng = np.random.default_rng(seed)
    out: list[Structure] = []
    for index in rng.permutation(len(formulas)):
        structure = random_structure(Composition(formulas[index]), rng)
        if structure is not None:
            out.append(structure.get_reduced_structure())
        if len(out) == n:
            break
    return out


def scored(results, hull) -> dict[str, np.ndarray]:
    """Final energy per atom and e_above_hull (MP2020-corrected) of each result; NaN where the
    relaxation failed or fell into a hole of the model (formation energy below the engine's
    MIN_FORMATION_EV_PER_ATOM, which scoring rejects as unphysical)."""
    from matsearch.scoring.corrections import mp2020_energy_per_atom
    from matsearch.scoring.objectives import MIN_FORMATION_EV_PER_ATOM

    energy = np.full(len(results), np.nan)
    e_hull = np.full(len(results), np.nan)
    for k, r in enumerate(results):
        if r.error is None:
            corrected = mp2020_energy_per_atom(r.structure, r.energy_per_atom, r.energy_convention)
            if (
                hull.formation_energy_per_atom(r.structure.composition, corrected)
                >= MIN_FORMATION_EV_PER_ATOM
            ):
                energy[k] = r.energy_per_atom
                e_hull[k] = hull.e_above_hull(r.structure.composition, corrected)
    return {"energy": energy, "e_hull": e_hull}


def run_sample(name: str, structures: list[Structure], args, hull) -> dict:
    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
    from matsearch.relax_defaults import RelaxSettings

    alone = RelaxSettings(
        fmax=0.05, steps=300, timeout_s=None, batch_atoms=args.batch_atoms, prerelax_model=None
    )
    modes = {"accurate only": MLIPRelaxer(args.accurate, device="cpu", settings=alone)}
    for handover in args.handover:
        two = dataclasses.replace(alone, prerelax_model=args.fast, prerelax_fmax=handover)
        modes[f"prerelax to {handover:g} eV/Å"] = MLIPRelaxer(args.accurate, device="cpu", settings=two)
    for relaxer in modes.values():  # load every model outside the timed part
        relaxer.single_point(structures[:1])
        if relaxer.settings.prerelax_model is not None:
            relaxer.relax(structures[:1])
    out: dict = {"n": len(structures), "n_atoms": sum(len(s) for s in structures)}
    reference = None
    for mode, relaxer in modes.items():
        wall, cpu = time.perf_counter(), time.process_time()
        results = relaxer.relax(structures)
        record = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "mean_steps": float(np.mean([r.steps for r in results])),
            "failed": sum(r.error is not None for r in results),
        }
        values = scored(results, hull)
        record["unphysical"] = int(np.sum(np.isnan(values["energy"]))) - record["failed"]
        if reference is None:
            reference = values
        else:
            both = np.isfinite(values["energy"]) & np.isfinite(reference["energy"])
            difference = values["energy"][both] - reference["energy"][both]
            record |= {
                "energy_mae_ev_per_atom": float(np.mean(np.abs(difference))),
                "energy_worst_ev_per_atom": float(np.max(np.abs(difference))),
                "energy_mean_signed_ev_per_atom": float(np.mean(difference)),
                "stable_call_agreement": float(
                    np.mean((values["e_hull"][both] <= 0) == (reference["e_hull"][both] <= 0))
                ),
                "metastable_call_agreement": float(
                    np.mean((values["e_hull"][both] <= 0.1) == (reference["e_hull"][both] <= 0.1))
                ),
            }
        out[mode] = record
        print(f"{name} {mode}: {record}", flush=True)
    return out


def markdown(result: dict) -> str:
    lines = [
        "| sample | mode | CPU s | steps | unphysical | ΔE MAE / worst (meV/atom) | stable same "
        "| metastable same |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sample in ("rattled", "random"):
        part = result[sample]
        for mode, r in part.items():
            if not isinstance(r, dict):
                continue
            delta = (
                f"{1e3 * r['energy_mae_ev_per_atom']:.1f} / {1e3 * r['energy_worst_ev_per_atom']:.1f}"
                if "energy_mae_ev_per_atom" in r
                else "—"
            )
            same = [
                f"{r[k]:.0%}" if k in r else "—"
                for k in ("stable_call_agreement", "metastable_call_agreement")
            ]
            lines.append(
                f"| {sample} ({part['n']}) | {mode} | {r['cpu_s']:.0f} | {r['mean_steps']:.0f} "
                f"| {r['unphysical']} | {delta} | " + " | ".join(same) + " |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accurate", default="sevennet-0")
    parser.add_argument("--fast", default="chgnet-0.3.0")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--handover", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="eV/Å")
    parser.add_argument("--batch-atoms", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("MATSEARCH_DATA_DIR", str(REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from matsearch.scoring.hull import HullReference

    hull = HullReference.from_registry("mp20-subset")
    _, rattled = load_sample(args.n, 1, 0.1, 0.04)
    result = {
        "accurate": args.accurate,
        "fast": args.fast,
        "rattled": run_sample("rattled", rattled, args, hull),
        "random": run_sample("random", random_sample(args.n, 1), args, hull),
        "config": {
            "date": time.strftime("%Y-%m-%d"),
            "threads": 1,
            "batch_atoms": args.batch_atoms,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), no GPU",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
