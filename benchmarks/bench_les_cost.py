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
import multiprocessing as mp
import os
import platform
from datetime import date
from pathlib import Path

import torch
from bench_mlip_single_point import SUPERCELLS, _status_mib, rattled_nacl_supercell, reset_peak_rss, timed

RESULTS = Path(__file__).resolve().parent / "results" / "les_cost.json"


def series(with_les: bool, threads: int, queue: mp.Queue) -> None:
    from matsearch.mlip import load_model
    from matsearch.mlip.train import attach_les_head

    torch.set_num_threads(threads)
    model = load_model("default", device="cpu")
    if with_les:
        attach_les_head(model).prepare_for_training(std=0.05, generator=torch.Generator().manual_seed(0))
    model.predict([rattled_nacl_supercell((1, 1, 1))])  # warm-up
    rows = []
    for repeats in SUPERCELLS:
        structure = rattled_nacl_supercell(repeats)
        before = reset_peak_rss()
        seconds = timed(lambda s=structure: model.predict([s]))[0]
        peak = _status_mib("VmHWM")
        seconds = min(seconds, timed(lambda s=structure: model.predict([s]))[0])
        rows.append(
            {
                "n_atoms": len(structure),
                "ms_per_atom": 1000 * seconds / len(structure),
                "extra_peak_mib": peak - before,
            }
        )
    queue.put(rows)


def run(with_les: bool, threads: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=series, args=(with_les, threads, queue))
    child.start()
    rows = queue.get()
    child.join()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    backbone, with_les = run(False, args.threads), run(True, args.threads)
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
