"""Cost of the Latent Ewald head: time per atom and peak memory with and without it.

Energy + forces + stress of rattled rock-salt NaCl supercells (8 to 512 atoms), one structure per
call, float32, the in-house model with and without a Latent Ewald head (σ = 1 Å, dl = 2 Å; its
charges are perturbed away from zero so the reciprocal sum really runs). Each variant runs in a
fresh process so peak memory is its own. Writes benchmarks/results/les_cost.json.

    python benchmarks/bench_les_cost.py [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path

from bench_mlip_single_point import run_supercells

RESULTS = Path(__file__).resolve().parent / "results" / "les_cost.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    backbone, with_les = run_supercells("ours", args.threads), run_supercells("ours_les", args.threads)
    result = {
        "date": date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": args.threads},
        "backbone": backbone,
        "with_les": with_les,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print("| atoms | backbone ms/atom | with LES ms/atom | LES overhead | backbone MiB | with LES MiB |")
    print("|---|---|---|---|---|---|")
    for b, les in zip(backbone, with_les, strict=True):
        print(
            f"| {b['n_atoms']} | {b['ms_per_atom']:.2f} | {les['ms_per_atom']:.2f} | "
            f"{les['ms_per_atom'] / b['ms_per_atom'] - 1:+.0%} | {b['extra_peak_mib']:.0f} | "
            f"{les['extra_peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
