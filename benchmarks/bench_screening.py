"""Static energy screening: energy-only `predict` vs today's full `predict` vs chgnet energy-only.

Measures, in one run on the same machine and thread count, the wall time to get the energies of
the same N MP-20 test crystals (a fixed sample of the shipped known-materials index,
`matsearch.structures.known.KnownMaterials`):

1. ours, full: ``MLIPModel.predict(structures)`` (energy, forces, stress: what screening used
   before energy-only modes existed);
2. ours, energy + forces: ``predict(structures, stress=False)``;
3. ours, energy only: ``predict(structures, forces=False, stress=False)`` (no autograd graph);
4. chgnet, energy only: ``CHGNet.predict_structure(structures, task="e", batch_size=...)``.

Each timing is the fastest of --repeats runs (the modes interleaved within each repeat) after one
warm-up on 16 structures; the energies of (1), (3) and (4) are compared as a check.

Usage: python benchmarks/bench_screening.py [--n 1000] [--threads 1] [--repeats 2] [--batch-size 64]
Writes benchmarks/results/screening.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "screening.json"


def sample(n: int, seed: int = 0) -> list:
    """n MP-20 test crystals of the shipped known-materials index, fixed by `seed`."""
    from matsearch.structures.known import KnownMaterials

    known = KnownMaterials.load()
    rows = known.table.index[known.table["split"] == "test"].to_numpy()
    picked = np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False)
    return [known.structure(int(row)) for row in sorted(picked)]


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from chgnet.model import CHGNet

    from matsearch.mlip import load_model

    structures = sample(args.n)
    ours = load_model("default", device=args.device)
    with contextlib.redirect_stdout(io.StringIO()):
        reference = CHGNet.load(use_device=args.device, verbose=False)
    size = args.batch_size
    modes = {
        "ours_full": lambda s: ours.predict(s, size),
        "ours_energy_forces": lambda s: ours.predict(s, size, stress=False),
        "ours_energy_only": lambda s: ours.predict(s, size, forces=False, stress=False),
        "chgnet_energy_only": lambda s: reference.predict_structure(s, task="e", batch_size=size),
    }
    seconds = dict.fromkeys(modes, float("inf"))
    outputs = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for run in modes.values():
            run(structures[:16])  # warm-up
    # Modes interleaved within each repeat, so that a change of the machine's load hits them alike.
    for repeat in range(args.repeats):
        for name, run in modes.items():
            with contextlib.redirect_stdout(io.StringIO()):
                elapsed, outputs[name] = timed(lambda run=run: run(structures))
            seconds[name] = min(seconds[name], elapsed)
            print(f"repeat {repeat + 1}, {name}: {elapsed:.2f} s", flush=True)
    atoms = np.array([len(s) for s in structures])
    full = np.array([o["energy"] for o in outputs["ours_full"]]) / atoms
    energy_only = np.array([o["energy"] for o in outputs["ours_energy_only"]]) / atoms
    chgnet = np.array([float(o["e"]) for o in outputs["chgnet_energy_only"]])  # eV/atom
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.system()} {platform.machine()}, {args.threads} torch thread(s), {args.device}",
        "torch": torch.__version__,
        "n_structures": len(structures),
        "n_atoms": int(atoms.sum()),
        "batch_size": size,
        "seconds": seconds,
        "structures_per_s": {k: len(structures) / v for k, v in seconds.items()},
        "speedup_energy_only_vs_full": seconds["ours_full"] / seconds["ours_energy_only"],
        "speedup_energy_only_vs_chgnet": seconds["chgnet_energy_only"] / seconds["ours_energy_only"],
        "max_abs_diff_energy_only_vs_full_ev_per_atom": float(np.abs(energy_only - full).max()),
        "max_abs_diff_vs_chgnet_ev_per_atom": float(np.abs(energy_only - chgnet).max()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print("| mode | s | structures/s |\n|---|---|---|")
    for name in modes:
        print(f"| {name} | {seconds[name]:.2f} | {report['structures_per_s'][name]:.0f} |")
    print(json.dumps({k: v for k, v in report.items() if k not in ("seconds", "structures_per_s")}, indent=2))


if __name__ == "__main__":
    main()
