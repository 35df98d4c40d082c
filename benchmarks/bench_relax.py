"""Relaxation speed: our batched MLIP relax vs the chgnet package's StructOptimizer one by one.

Sample: ``--n`` MP-20 test structures (``matsearch.data.load_mp20("test")``, drawn with
``numpy.random.default_rng(seed)`` from the rows sorted by material_id), each rattled by Gaussian
noise of ``--rattle`` Å per Cartesian component and strained by a random symmetric strain with
components up to ``--strain``. Both relaxers use FIRE + Frechet cell filter with the same fmax and
step cap, no timeout, on the same device and thread count, in this one run:

- ours: ``MLIPRelaxer`` (matsearch.mlip.optimizers.relax: all structures at once, converged ones swapped out),
- reference: ``CHGNetRelaxer`` (chgnet StructOptimizer, ASE FIRE, one structure at a time).

Reports wall time and speed-up, mean FIRE steps, convergence, and agreement of initial and final
energies (eV/atom) and of relaxed structures (pymatgen StructureMatcher).

    MATSEARCH_DATA_DIR=../shared/data python benchmarks/bench_relax.py [--n 64] [--device cuda]

Writes benchmarks/results/relax.json (or ``--out``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "relax.json"


def load_sample(n: int, seed: int, rattle_a: float, strain: float) -> tuple[list[str], list[Structure]]:
    """Material ids and rattled, strained structures of n MP-20 test rows."""
    from matsearch.data import load_mp20

    frame = load_mp20("test").sort_values("material_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = frame.iloc[sorted(rng.choice(len(frame), size=n, replace=False))]
    structures = []
    for cif in rows["cif"]:
        structure = Structure.from_str(cif, fmt="cif")
        eps = rng.uniform(-strain, strain, (3, 3))
        lattice = Lattice(structure.lattice.matrix @ (np.eye(3) + 0.5 * (eps + eps.T)))
        cart = structure.frac_coords @ lattice.matrix
        cart = cart + rng.normal(0.0, rattle_a, cart.shape)
        structures.append(Structure(lattice, structure.species, cart, coords_are_cartesian=True))
    return rows["material_id"].tolist(), structures


def summarize(ids, structures, ours, ref, t_ours: float, t_ref: float) -> dict:
    """Aggregate numbers and one record per structure."""
    matcher = StructureMatcher()
    both_ok = [
        i for i, (a, b) in enumerate(zip(ours, ref, strict=True)) if a.error is None and b.error is None
    ]
    d_final = [abs(ours[i].energy_per_atom - ref[i].energy_per_atom) for i in both_ok]
    d_initial = [abs(ours[i].initial_energy_per_atom - ref[i].initial_energy_per_atom) for i in both_ok]
    matched = [bool(matcher.fit(ours[i].structure, ref[i].structure)) for i in both_ok]
    records = [
        {
            "material_id": mid,
            "n_atoms": len(s),
            "ours": {
                "steps": a.steps,
                "converged": a.converged,
                "error": a.error,
                "e_initial": a.initial_energy_per_atom,
                "e_final": a.energy_per_atom,
            },
            "chgnet": {
                "steps": b.steps,
                "converged": b.converged,
                "error": b.error,
                "e_initial": b.initial_energy_per_atom,
                "e_final": b.energy_per_atom,
                "wall_time_s": b.wall_time_s,
            },
        }
        for mid, s, a, b in zip(ids, structures, ours, ref, strict=True)
    ]
    return {
        "n_structures": len(structures),
        "n_atoms_total": sum(len(s) for s in structures),
        "wall_time_s": {"matsearch": t_ours, "chgnet": t_ref},
        "speedup": t_ref / t_ours,
        "mean_steps": {
            "matsearch": float(np.mean([r.steps for r in ours])),
            "chgnet": float(np.mean([r.steps for r in ref])),
        },
        "same_step_count_fraction": float(np.mean([ours[i].steps == ref[i].steps for i in both_ok])),
        "converged": {
            "matsearch": sum(r.converged for r in ours),
            "chgnet": sum(r.converged for r in ref),
        },
        "failed": {
            "matsearch": sum(r.error is not None for r in ours),
            "chgnet": sum(r.error is not None for r in ref),
        },
        "abs_diff_initial_energy_ev_per_atom": {
            "mean": float(np.mean(d_initial)),
            "max": float(np.max(d_initial)),
        },
        "abs_diff_final_energy_ev_per_atom": {
            "mean": float(np.mean(d_final)),
            "max": float(np.max(d_final)),
        },
        "structure_match_fraction": float(np.mean(matched)),
        "structures": records,
    }


def markdown(result: dict) -> str:
    wall, steps = result["wall_time_s"], result["mean_steps"]
    conv, failed = result["converged"], result["failed"]
    n = result["n_structures"]
    d_i, d_f = (
        result["abs_diff_initial_energy_ev_per_atom"],
        result["abs_diff_final_energy_ev_per_atom"],
    )
    lines = [
        f"Relaxing {n} rattled MP-20 test structures ({result['n_atoms_total']} atoms), "
        f"fmax {result['config']['fmax']} eV/Å, device {result['config']['device']}, "
        f"{result['config']['threads']} threads",
        "",
        "| relaxer | wall time (s) | structures/s | mean FIRE steps | converged | failed |",
        "|---|---:|---:|---:|---:|---:|",
        f"| matsearch (batched) | {wall['matsearch']:.1f} | {n / wall['matsearch']:.2f} | "
        f"{steps['matsearch']:.1f} | {conv['matsearch']}/{n} | {failed['matsearch']} |",
        f"| chgnet StructOptimizer (one by one) | {wall['chgnet']:.1f} | "
        f"{n / wall['chgnet']:.2f} | "
        f"{steps['chgnet']:.1f} | {conv['chgnet']}/{n} | {failed['chgnet']} |",
        "",
        f"Speed-up: **{result['speedup']:.1f}×**. Same step count: "
        f"{100 * result['same_step_count_fraction']:.0f} %. "
        f"|ΔE| initial mean {d_i['mean']:.1e} / max {d_i['max']:.1e} eV/atom; "
        f"final mean {d_f['mean']:.1e} / max {d_f['max']:.1e} eV/atom; "
        f"StructureMatcher agreement {100 * result['structure_match_fraction']:.0f} %.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="number of structures")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both relaxers)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rattle", type=float, default=0.05, help="Gaussian sigma, Å")
    parser.add_argument("--strain", type=float, default=0.02, help="max strain component")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-atoms", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("MATSEARCH_DATA_DIR", str(REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from matsearch.evaluation.chgnet_relaxer import CHGNetRelaxer
    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
    from matsearch.relax_defaults import RelaxSettings

    ids, structures = load_sample(args.n, args.seed, args.rattle, args.strain)
    settings = RelaxSettings(fmax=args.fmax, steps=args.steps, timeout_s=None, batch_atoms=args.batch_atoms)
    ours = MLIPRelaxer(device=args.device, settings=settings)
    ref = CHGNetRelaxer(settings, device=args.device)
    for relaxer in (ours, ref):  # load models and warm up outside the timed part
        relaxer.single_point(structures[:2])

    def timed(relaxer):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        results = relaxer.relax(structures)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return results, time.perf_counter() - started

    ours_results, t_ours = timed(ours)
    print(f"matsearch: {t_ours:.1f} s", flush=True)
    ref_results, t_ref = timed(ref)
    print(f"chgnet: {t_ref:.1f} s", flush=True)

    result = summarize(ids, structures, ours_results, ref_results, t_ours, t_ref)
    result["config"] = {
        "n": args.n,
        "seed": args.seed,
        "rattle_a": args.rattle,
        "strain": args.strain,
        "fmax": args.fmax,
        "steps": args.steps,
        "batch_atoms": args.batch_atoms,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
