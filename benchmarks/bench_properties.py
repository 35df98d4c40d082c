"""Property scoring of examples/stable_stiff.yaml: today's evaluation stage vs the old per-candidate scans.

1. Runs the example (local executor, this process; `--generations` shrinks it) and records the
   evaluation stage's property time as stored on the candidates (``timings["properties"]``).
2. On the relaxed structures of that run, in the same process and with the same model, times the
   bulk-modulus scans three ways and checks that they give the same moduli:
   - old: one candidate at a time, its 7 scaled cells relaxed from the scaled input positions
     with FIRE in one batched call (what ``scoring/properties.py`` did in the driver);
   - batched, old optimiser: the same relaxations for all candidates of a batch of
     ``mlip.batch_size`` in one call (what batching alone gives);
   - new: ``evaluation.bulk_modulus.bulk_moduli`` (all candidates of a batch together, volumes
     relaxed in rounds from extrapolated positions, L-BFGS).

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


def old_scans(structures, model, settings) -> list:
    """The old scan of `structures` together: scaled cells relaxed from the scaled input with FIRE."""
    from matsearch.evaluation.bulk_modulus import fit_bulk_modulus, volume_factors
    from matsearch.mlip import RelaxSettings, relax

    factors = volume_factors(settings.strain, settings.n_points)
    scaled = []
    for structure in structures:
        for factor in factors:
            copy = structure.copy()
            copy.scale_lattice(structure.volume * factor)
            scaled.append(copy)
    relaxed = relax(
        scaled,
        model,
        RelaxSettings(fmax=settings.fmax, steps=settings.steps, timeout_s=None),
        cell_filter=False,
    )
    fits = []
    for i, structure in enumerate(structures):
        scan = relaxed[i * len(factors) : (i + 1) * len(factors)]
        if any(point.error for point in scan):
            fits.append(None)
            continue
        volumes = [structure.volume * f / len(structure) for f in factors]
        fits.append(fit_bulk_modulus(volumes, [p.energy_per_atom for p in scan], eos=settings.eos))
    return fits


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def moduli(fits) -> list:
    return [None if f is None or f.b0_gpa is None else f.b0_gpa for f in fits]


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
        run_s, run = timed(Search(spec).run)
        scored = [c for c in run.candidates() if c.status == Status.SCORED]
    in_run_s = sum(c.timings.get("properties", 0.0) for c in scored)
    structures = [c.relaxed for c in scored]
    settings, size = spec.scoring.bulk_modulus, spec.mlip.batch_size
    relaxer = build_relaxer(spec.mlip)
    relaxer.single_point(structures[:1])  # load the model outside the timings
    batches = [structures[start : start + size] for start in range(0, len(structures), size)]

    old_s, old = timed(lambda: [old_scans([s], relaxer.model, settings)[0] for s in structures])
    batched_old_s, batched_old = timed(
        lambda: [f for b in batches for f in old_scans(b, relaxer.model, settings)]
    )
    new_s, new = timed(lambda: [f for b in batches for f in bulk_moduli(b, relaxer, settings)])

    def agreement(a, b) -> dict:
        both = np.array([(x, y) for x, y in zip(moduli(a), moduli(b), strict=True) if None not in (x, y)])
        if not len(both):
            return {"fitted_both": 0}
        rel = np.abs(both[:, 0] - both[:, 1]) / both[:, 0]
        return {
            "fitted_both": len(both),
            "median_rel_diff": float(np.median(rel)),
            "max_rel_diff": float(rel.max()),
        }

    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.system()} {platform.machine()}, {args.threads} torch thread(s), cpu",
        "torch": torch.__version__,
        "generations": args.generations,
        "candidates_scanned": len(structures),
        "atoms_mean": float(np.mean([len(s) for s in structures])),
        "run_s": run_s,
        "in_run_property_s": in_run_s,
        "old_per_candidate_s": old_s,
        "batched_old_optimiser_s": batched_old_s,
        "new_s": new_s,
        "speedup_batching_alone": old_s / batched_old_s,
        "speedup": old_s / new_s,
        "in_run_speedup": old_s / in_run_s if in_run_s > 0 else None,
        "moduli_fitted": {
            "old": sum(m is not None for m in moduli(old)),
            "new": sum(m is not None for m in moduli(new)),
        },
        "new_vs_old": agreement(old, new),
        "batched_vs_old": agreement(old, batched_old),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
