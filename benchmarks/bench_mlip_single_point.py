"""Single-point energy + forces + stress: our batched MLIP vs the reference chgnet package.

Measures, in one run on the same machine and thread count:

1. 200 MP-20 test structures (fixed sample): ours batched (``MLIPModel.predict``), chgnet
   ``predict_structure`` one call per structure (the reference), chgnet ``predict_structure(list)``
   (its own batching); also the worst parity deviations on those structures.
2. Supercells of rattled rocksalt NaCl from 8 to 512 atoms, one structure per call: time per atom
   and peak resident memory during one call (Linux VmHWM, reset before the call; "extra" = peak
   minus the resident memory before it), ours and chgnet each in a fresh child process.

Usage: python benchmarks/bench_mlip_single_point.py [--threads 2] [--n 200] [--repeats 3]
On a machine shared with other jobs, --threads 1 avoids thread oversubscription, which slows both
implementations by large and unequal factors.
Writes benchmarks/results/mlip_single_point.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Lattice, Structure

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "mlip_single_point.json"
SUPERCELLS = [
    (1, 1, 1),
    (2, 1, 1),
    (2, 2, 1),
    (2, 2, 2),
    (3, 2, 2),
    (3, 3, 2),
    (3, 3, 3),
    (4, 4, 3),
    (4, 4, 4),
]


def data_dir() -> Path:
    return Path(os.environ.get("MATSEARCH_DATA_DIR", REPO.parent / "shared" / "data"))


def mp20_test_structures(n: int, seed: int = 0) -> list[Structure]:
    """The same fixed sample as tests/mlip/test_parity.py."""
    table = pd.read_csv(data_dir() / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    rows = table[table["split"] == "test"].sort_values("material_id").sample(n=n, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(cif, fmt="cif") for cif in rows["cif"]]


def rattled_nacl_supercell(repeats: tuple[int, int, int], seed: int = 0) -> Structure:
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl.make_supercell(list(repeats))
    rng = np.random.default_rng(seed)
    return Structure(
        nacl.lattice,
        nacl.species,
        nacl.cart_coords + rng.uniform(-0.05, 0.05, (len(nacl), 3)),
        coords_are_cartesian=True,
    )


def load_ours():
    from matsearch.mlip import load_model

    return load_model("default", device="cpu")


def load_chgnet():
    from chgnet.model import CHGNet

    return CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (Linux) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not found in /proc/self/status")


def reset_peak_rss() -> float:
    """Return freed heap to the OS, reset the peak resident memory to the current one (Linux);
    returns the current resident memory in MiB."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def supercell_child(which: str, threads: int, queue: mp.Queue) -> None:
    """Run the supercell series for one implementation ("ours", "ours_les" or "chgnet") in a
    fresh process (clean peak memory)."""
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_chgnet() if which == "chgnet" else load_ours()
        if which == "ours_les":  # a Latent Ewald head with non-zero charges, so the k-space sum runs
            from matsearch.mlip.heads import attach_long_range_head

            head = attach_long_range_head(model, "les")
            head.prepare_for_training(std=0.05, generator=torch.Generator().manual_seed(0))
        warm = rattled_nacl_supercell((1, 1, 1))
        run = model.predict_structure if which == "chgnet" else (lambda s: model.predict([s]))
        run(warm)
        rows = []
        for repeats in SUPERCELLS:
            structure = rattled_nacl_supercell(repeats)
            before = reset_peak_rss()
            seconds = timed(lambda s=structure: run(s))[0]
            peak = _status_mib("VmHWM")
            seconds = min(seconds, timed(lambda s=structure: run(s))[0])
            rows.append(
                {
                    "n_atoms": len(structure),
                    "seconds": seconds,
                    "ms_per_atom": 1000 * seconds / len(structure),
                    "peak_rss_mib": peak,
                    "extra_peak_mib": peak - before,
                }
            )
    queue.put(rows)


def run_supercells(which: str, threads: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=supercell_child, args=(which, threads, queue))
    child.start()
    rows = queue.get()
    child.join()
    return rows


def parity(ours: list[dict], reference: list[dict], structures: list[Structure]) -> dict:
    return {
        "energy_ev_per_atom": max(
            abs(o["energy"] / len(s) - float(r["e"]))
            for o, r, s in zip(ours, reference, structures, strict=True)
        ),
        "forces_ev_per_a": max(
            float(np.abs(o["forces"] - r["f"]).max()) for o, r in zip(ours, reference, strict=True)
        ),
        "stress_gpa": max(
            float(np.abs(o["stress"] - r["s"]).max()) for o, r in zip(ours, reference, strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-supercells", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    structures = mp20_test_structures(args.n)
    n_atoms = sum(len(s) for s in structures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_model, chgnet_model = load_ours(), load_chgnet()
        ours_model.predict(structures[:8])  # warm-up
        chgnet_model.predict_structure(structures[0])

        # Interleave ours and chgnet so that both see the same machine load.
        ours_times, chgnet_batched_times = [], []
        chgnet_single_s, reference = timed(lambda: [chgnet_model.predict_structure(s) for s in structures])
        for _ in range(args.repeats):
            seconds, ours = timed(lambda: ours_model.predict(structures, batch_size=args.batch_size))
            ours_times.append(seconds)
            seconds, _ = timed(lambda: chgnet_model.predict_structure(structures, batch_size=16))
            chgnet_batched_times.append(seconds)
    ours_s = statistics.median(ours_times)
    chgnet_batched_s = statistics.median(chgnet_batched_times)

    result = {
        "benchmark": "single point energy+forces+stress, float32, CPU",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "versions": {"torch": torch.__version__, "chgnet": __import__("chgnet").__version__},
        "mp20": {
            "n_structures": len(structures),
            "n_atoms": n_atoms,
            "batch_size": args.batch_size,
            "ours_batched_s": ours_s,
            "ours_batched_runs_s": ours_times,
            "chgnet_one_by_one_s": chgnet_single_s,
            "chgnet_batched_s": chgnet_batched_s,
            "chgnet_batched_runs_s": chgnet_batched_times,
            "speedup_vs_chgnet_one_by_one": chgnet_single_s / ours_s,
            "speedup_vs_chgnet_batched": chgnet_batched_s / ours_s,
            "ours_ms_per_structure": 1000 * ours_s / len(structures),
            "chgnet_ms_per_structure": 1000 * chgnet_single_s / len(structures),
            "parity_max_abs": parity(ours, reference, structures),
        },
    }
    if not args.skip_supercells:
        result["supercells"] = {
            "structure": "rocksalt NaCl supercells, atoms rattled by up to 0.05 Å",
            "ours": run_supercells("ours", args.threads),
            "chgnet": run_supercells("chgnet", args.threads),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))

    mp20 = result["mp20"]
    print(
        f"\nMP-20 test, {len(structures)} structures, {n_atoms} atoms, "
        f"{args.threads} torch threads, "
        f"load average {load_before[0]:.1f}\n"
    )
    print("| implementation | total s | ms / structure | ours is faster by |")
    print("|---|---|---|---|")
    print(
        f"| ours, batched (batch {args.batch_size}) | {ours_s:.2f} | "
        f"{mp20['ours_ms_per_structure']:.1f} | - |"
    )
    print(
        f"| chgnet predict_structure, one by one | {chgnet_single_s:.2f} | "
        f"{mp20['chgnet_ms_per_structure']:.1f} | {mp20['speedup_vs_chgnet_one_by_one']:.2f}x |"
    )
    print(
        f"| chgnet predict_structure(list), batch 16 | {chgnet_batched_s:.2f} | "
        f"{1000 * chgnet_batched_s / len(structures):.1f} | "
        f"{mp20['speedup_vs_chgnet_batched']:.2f}x |"
    )
    print(f"\nparity (max abs): {mp20['parity_max_abs']}")
    if "supercells" in result:
        print(
            "\n| atoms | ours ms/atom | chgnet ms/atom | speedup | ours extra peak MiB | "
            "chgnet extra peak MiB |"
        )
        print("|---|---|---|---|---|---|")
        for o, c in zip(result["supercells"]["ours"], result["supercells"]["chgnet"], strict=True):
            print(
                f"| {o['n_atoms']} | {o['ms_per_atom']:.2f} | {c['ms_per_atom']:.2f} | "
                f"{c['seconds'] / o['seconds']:.2f}x | {o['extra_peak_mib']:.0f} | "
                f"{c['extra_peak_mib']:.0f} |"
            )
    print(f"\nwrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
