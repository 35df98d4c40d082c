"""Property scoring of examples/stable_stiff.yaml: batched scans vs the old per-candidate scans.

1. Runs the example (local executor, this process; `--generations` shrinks it) and records the
   evaluation stage's property time as stored on the candidates (``timings["properties"]``).
2. On the relaxed structures of that run, in the same process and with the same model, times the
   bulk-modulus scans the old way — one candidate at a time, its 7 volumes in one batched
   relaxation (what ``scoring/properties.py`` did in the driver) — and the new way: all candidates
   of a batch of ``mlip.batch_size`` together (``evaluation.bulk_modulus.bulk_moduli``), and checks
   that both give the same moduli.

Usage: python benchmarks/bench_properties.py [--generations 3] [--threads 1]
Writes benchmarks/results/properties.json and prints the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "properties.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from matsearch.candidate import Status
    from matsearch.engine import Search
    from matsearch.evaluation.bulk_modulus import bulk_moduli
    from matsearch.evaluation.evaluators import build_relaxer
    from matsearch.spec import load_spec

    spec = load_spec(REPO / "examples" / "stable_stiff.yaml")
    with tempfile.TemporaryDirectory() as folder:
        spec = spec.model_copy(update={"generations": args.generations, "output": Path(folder)})
        started = time.perf_counter()
        run = Search(spec).run()
        run_s = time.perf_counter() - started
        scored = [c for c in run.candidates() if c.status == Status.SCORED]
    in_run_s = sum(c.timings.get("properties", 0.0) for c in scored)
    structures = [c.relaxed for c in scored]
    settings, size = spec.scoring.bulk_modulus, spec.mlip.batch_size
    relaxer = build_relaxer(spec.mlip)
    relaxer.single_point(structures[:1])  # load the model outside the timings

    started = time.perf_counter()
    one_by_one = [bulk_moduli([s], relaxer, settings)[0] for s in structures]
    per_candidate_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = []
    for start in range(0, len(structures), size):
        batched += bulk_moduli(structures[start : start + size], relaxer, settings)
    batched_s = time.perf_counter() - started

    pairs = [(a.b0_gpa, b.b0_gpa) for a, b in zip(one_by_one, batched, strict=True)]
    both = np.array([p for p in pairs if None not in p], dtype=float)
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.system()} {platform.machine()}, {args.threads} torch thread(s), cpu",
        "torch": torch.__version__,
        "generations": args.generations,
        "candidates_scanned": len(structures),
        "atoms_mean": float(np.mean([len(s) for s in structures])),
        "run_s": run_s,
        "in_run_property_s": in_run_s,
        "per_candidate_scans_s": per_candidate_s,
        "batched_scans_s": batched_s,
        "speedup": per_candidate_s / batched_s,
        "moduli_fitted": int(len(both)),
        "max_rel_diff_b0": float(np.max(np.abs(both[:, 0] - both[:, 1]) / both[:, 0])) if len(both) else None,
        "same_failures": all(
            (a.error is None) == (b.error is None) for a, b in zip(one_by_one, batched, strict=True)
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
