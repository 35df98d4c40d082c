"""Speed of our NequIP backbone against the `sevenn` package it reproduces, in one run.

1. Single points (energy, forces, stress) on ``--n`` MP-20 test structures (the parity tests'
   fixed sample): ours batched (``MLIPModel.predict``, ``--batch-size`` structures per call) vs
   sevenn's ``SevenNetCalculator`` one structure at a time; interleaved repeats, median.
2. Relaxation (FIRE + Frechet cell filter, same fmax and step cap) of ``--n-relax`` rattled and
   strained MP-20 test structures (bench_relax.py's sample): ours batched (``mlip.relax``, atom
   budget ``--batch-atoms``) vs ASE's FIRE on sevenn's calculator, one structure at a time; the
   final energies of both are compared.

Both run with ``--threads`` torch threads (1 by default) on the CPU (or ``--device cuda``). Wall
and CPU seconds are reported: on a machine shared with other jobs the CPU time of this process is
the steadier measure, and the speed-ups in both are given.

    python benchmarks/bench_sevenn_speed.py [--model sevennet-0] [--n 100] [--n-relax 16]

Writes benchmarks/results/sevenn_speed.json (or ``--out``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_mlip_single_point import mp20_test_structures  # noqa: E402
from bench_relax import load_sample  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "sevenn_speed.json"
SEVENN_CHECKPOINTS = {
    "sevennet-0": ("SEVENNET_0_11Jul2024", None),
    "sevennet-l3i5": ("SEVENNET_l3i5", None),
    "sevennet-mf-0": ("SEVENNET_MF_0", "PBE"),
}


def sevenn_calculator(name: str, device: str):
    import sevenn._const as sevenn_const
    from sevenn.calculator import SevenNetCalculator

    constant, fidelity = SEVENN_CHECKPOINTS[name]
    return SevenNetCalculator(getattr(sevenn_const, constant), device=device, modal=fidelity)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def sevenn_single_points(calculator, structures: list[Structure]) -> list[float]:
    energies = []
    for structure in structures:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        atoms.get_forces()
        atoms.get_stress()
        energies.append(atoms.get_potential_energy())
    return energies


def sevenn_relax(calculator, structures: list[Structure], fmax: float, steps: int) -> list[dict]:
    """ASE FIRE + FrechetCellFilter on sevenn's calculator, one structure at a time."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    out = []
    for structure in structures:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator
        optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = optimizer.run(fmax=fmax, steps=steps)
        out.append(
            {
                "steps": optimizer.nsteps,
                "converged": bool(converged),
                "energy_per_atom": atoms.get_potential_energy() / len(atoms),
            }
        )
    return out


def run_single_points(model, calculator, structures, batch_size: int, repeats: int) -> dict:
    ours_wall, ours_cpu, ref_wall, ref_cpu = [], [], [], []
    energies: dict = {}
    for _ in range(repeats):  # interleaved, so that both see the same load
        wall, cpu, out = timed(lambda: model.predict(structures, batch_size=batch_size))
        ours_wall.append(wall)
        ours_cpu.append(cpu)
        energies["ours"] = [o["energy"] for o in out]
        wall, cpu, out = timed(lambda: sevenn_single_points(calculator, structures))
        ref_wall.append(wall)
        ref_cpu.append(cpu)
        energies["sevenn"] = out
    worst = max(
        abs(a - b) / len(s) for a, b, s in zip(energies["ours"], energies["sevenn"], structures, strict=True)
    )
    return {
        "n_structures": len(structures),
        "n_atoms": sum(len(s) for s in structures),
        "batch_size": batch_size,
        "ours_wall_s": statistics.median(ours_wall),
        "sevenn_wall_s": statistics.median(ref_wall),
        "ours_cpu_s": statistics.median(ours_cpu),
        "sevenn_cpu_s": statistics.median(ref_cpu),
        "speedup_wall": statistics.median(ref_wall) / statistics.median(ours_wall),
        "speedup_cpu": statistics.median(ref_cpu) / statistics.median(ours_cpu),
        "worst_energy_difference_ev_per_atom": worst,
        "all_wall_s": {"ours": ours_wall, "sevenn": ref_wall},
    }


def run_relax(model, calculator, structures, args) -> dict:
    from matsearch.mlip import RelaxSettings, relax

    wall, cpu, ours = timed(
        lambda: relax(
            structures,
            model,
            RelaxSettings(fmax=args.fmax, steps=args.steps, batch_atoms=args.batch_atoms, timeout_s=None),
        )
    )
    ref_wall, ref_cpu, ref = timed(lambda: sevenn_relax(calculator, structures, args.fmax, args.steps))
    both = [i for i, r in enumerate(ours) if r.error is None]
    return {
        "n_structures": len(structures),
        "n_atoms": sum(len(s) for s in structures),
        "batch_atoms": args.batch_atoms,
        "ours_wall_s": wall,
        "sevenn_ase_wall_s": ref_wall,
        "ours_cpu_s": cpu,
        "sevenn_ase_cpu_s": ref_cpu,
        "speedup_wall": ref_wall / wall,
        "speedup_cpu": ref_cpu / cpu,
        "mean_steps": {
            "ours": float(np.mean([r.steps for r in ours])),
            "sevenn_ase": float(np.mean([r["steps"] for r in ref])),
        },
        "converged": {"ours": sum(r.converged for r in ours), "sevenn_ase": sum(r["converged"] for r in ref)},
        "final_energy_mae_ev_per_atom": float(
            np.mean([abs(ours[i].energy_per_atom - ref[i]["energy_per_atom"]) for i in both])
        ),
    }


def markdown(result: dict) -> str:
    sp, rx = result["single_point"], result["relax"]
    ratios = "{speedup_wall:.2f}x | {speedup_cpu:.2f}x |"
    return "\n".join(
        [
            "| measure | ours | sevenn | speed-up (wall) | speed-up (CPU) |",
            "|---|---|---|---|---|",
            f"| single points, {sp['n_structures']} MP-20 ({sp['n_atoms']} atoms) "
            f"| {sp['ours_wall_s']:.2f} s | {sp['sevenn_wall_s']:.2f} s | " + ratios.format(**sp),
            f"| FIRE relax, {rx['n_structures']} rattled MP-20 | {rx['ours_wall_s']:.1f} s "
            f"| {rx['sevenn_ase_wall_s']:.1f} s (+ ASE FIRE) | " + ratios.format(**rx),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sevennet-0", choices=sorted(SEVENN_CHECKPOINTS))
    parser.add_argument("--n", type=int, default=100, help="single-point structures")
    parser.add_argument("--batch-size", type=int, default=4, help="structures per batched call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-relax", type=int, default=16)
    parser.add_argument("--batch-atoms", type=int, default=128, help="atom budget of the batched relaxation")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("MATSEARCH_DATA_DIR", str(REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    from matsearch.mlip import load_model

    model = load_model(args.model, device=args.device)
    calculator = sevenn_calculator(args.model, args.device)
    structures = mp20_test_structures(args.n)
    model.predict(structures[:4])  # warm up both outside the timed part
    sevenn_single_points(calculator, structures[:4])
    result = {
        "model": args.model,
        "single_point": run_single_points(model, calculator, structures, args.batch_size, args.repeats),
    }
    print(json.dumps(result["single_point"], indent=1), flush=True)
    _, relax_structures = load_sample(args.n_relax, 0, 0.05, 0.02)
    result["relax"] = run_relax(model, calculator, relax_structures, args)
    print(json.dumps(result["relax"], indent=1), flush=True)
    result["config"] = {
        **{k: v for k, v in vars(args).items() if k != "out"},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
