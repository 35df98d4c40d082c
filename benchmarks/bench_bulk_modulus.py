"""Bulk modulus from universal MLIPs against DFT (MP PBE elastic tensors, K_VRH).

Sample: MP binaries from the matcalc elasticity set (registry dataset
``matcalc-mp-binary-elasticity``) with at most ``--max-atoms`` atoms and K_VRH > 0, sorted by
mp_id and drawn with ``numpy.random.default_rng(seed)``. Each structure is first relaxed (cell and
positions, FIRE + Frechet cell filter, fmax 0.05 eV/Å) with the MLIP itself, then
``matsearch.evaluation.bulk_modulus`` fits Birch–Murnaghan over ±6 % volume (7 fixed-cell
relaxations). Models: the ``chgnet`` package (CHGNetCalculator) and the in-house model
(``matsearch.mlip.load_model("default")``, batched relax and batched EOS).

Writes benchmarks/results/bulk_modulus.json (results of models not run this time are kept when
the sample is the same) and prints a markdown table. Error = MLIP − DFT (GPa).

    MATSEARCH_DATA_DIR=../shared/data python benchmarks/bench_bulk_modulus.py --n 60
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from matsearch.data import dataset_path
from matsearch.evaluation.bulk_modulus import BulkModulusResult, bulk_moduli
from matsearch.spec import BulkModulusSpec

RESULTS = Path(__file__).parent / "results" / "bulk_modulus.json"
RELAX_FMAX = 0.05  # eV/Å
RELAX_STEPS = 500


def load_sample(n: int, max_atoms: int, seed: int) -> list[dict]:
    """Deterministic sample of MP binaries: n records with ≤ max_atoms sites and K_VRH > 0 GPa."""
    with gzip.open(dataset_path("matcalc-mp-binary-elasticity"), "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    eligible = sorted(
        (
            r
            for r in records
            if len(r["structure"]["sites"]) <= max_atoms
            and r["bulk_modulus_vrh"] is not None
            and np.isfinite(r["bulk_modulus_vrh"])
            and r["bulk_modulus_vrh"] > 0
        ),
        key=lambda r: r["mp_id"],
    )
    picked = np.random.default_rng(seed).choice(len(eligible), size=min(n, len(eligible)), replace=False)
    return [eligible[i] for i in sorted(picked)]


def run_chgnet(structures: list[Structure]) -> tuple[list[BulkModulusResult], list[str | None]]:
    """Relax with chgnet's StructOptimizer, then fit the EOS with ASE FIRE and the same model."""
    from matsearch.evaluation.chgnet_relaxer import CHGNetRelaxer
    from matsearch.relax_defaults import RelaxSettings

    relaxer = CHGNetRelaxer(RelaxSettings(fmax=RELAX_FMAX, steps=RELAX_STEPS, timeout_s=None), device="cpu")
    results, relax_errors = [], []
    for structure in structures:
        (relaxed,) = relaxer.relax([structure])
        relax_errors.append(relaxed.error)
        if relaxed.error is not None:  # a failed relaxation is one failed sample
            results.append(BulkModulusResult(None, None, None, error=f"relaxation failed: {relaxed.error}"))
            continue
        results += bulk_moduli([relaxed.structure], relaxer, BulkModulusSpec())
        print(f"chgnet {len(results)}/{len(structures)}: B = {results[-1].b0_gpa}", flush=True)
    return results, relax_errors


def run_inhouse(structures: list[Structure]) -> tuple[list[BulkModulusResult], list[str | None]]:
    """Batched cell relaxation and batched EOS with the in-house model."""
    import torch

    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
    from matsearch.mlip import RelaxSettings, load_model

    model = load_model("default", device="cpu", dtype=torch.float32)
    relaxer = MLIPRelaxer.from_model(
        model, RelaxSettings(fmax=RELAX_FMAX, steps=RELAX_STEPS, timeout_s=None, prerelax_model=None)
    )
    relaxed = relaxer.relax(structures)
    ok = [i for i, r in enumerate(relaxed) if r.error is None]
    fitted = bulk_moduli([relaxed[i].structure for i in ok], relaxer, BulkModulusSpec())
    results: list[BulkModulusResult] = [
        BulkModulusResult(None, None, None, error=f"relaxation failed: {r.error}") for r in relaxed
    ]
    for i, result in zip(ok, fitted, strict=True):
        results[i] = result
    return results, [r.error for r in relaxed]


def summarise(dft: np.ndarray, results: list[BulkModulusResult]) -> dict:
    """MAE, mean signed error (MLIP − DFT), median error and failure count, GPa."""
    pred = np.array([np.nan if r.b0_gpa is None else r.b0_gpa for r in results])
    ok = np.isfinite(pred)
    err = pred[ok] - dft[ok]
    return {
        "n": int(len(results)),
        "n_ok": int(ok.sum()),
        "n_failed": int((~ok).sum()),
        "mae_gpa": float(np.abs(err).mean()),
        "mean_signed_error_gpa": float(err.mean()),
        "median_signed_error_gpa": float(np.median(err)),
        "mean_relative_error": float((err / dft[ok]).mean()),
        "fraction_softer_than_dft": float((err < 0).mean()),
    }


def markdown_table(report: dict) -> str:
    """The summary of every model as a markdown table."""
    sample = report["sample"]
    lines = [
        f"Bulk modulus vs MP PBE K_VRH: {sample['n']} binaries, ≤ {sample['max_atoms']} atoms, "
        f"seed {sample['seed']}; error = MLIP − DFT",
        "",
        "| model | ok / n | MAE (GPa) | mean signed error (GPa) | median signed error (GPa) "
        "| mean relative error | softer than DFT | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["models"].items():
        lines.append(
            f"| {name} | {s['n_ok']} / {s['n']} | {s['mae_gpa']:.1f} "
            f"| {s['mean_signed_error_gpa']:+.1f} | {s['median_signed_error_gpa']:+.1f} "
            f"| {s['mean_relative_error']:+.0%} | {s['fraction_softer_than_dft']:.0%} "
            f"| {s['wall_time_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="number of structures")
    parser.add_argument("--max-atoms", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models", nargs="+", default=["chgnet", "matsearch"], choices=["chgnet", "matsearch"]
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    records = load_sample(args.n, args.max_atoms, args.seed)
    structures = [Structure.from_dict(r["structure"]) for r in records]
    dft = np.array([r["bulk_modulus_vrh"] for r in records], dtype=float)
    runners = {"chgnet": run_chgnet, "matsearch": run_inhouse}
    report: dict = {
        "dataset": "matcalc-mp-binary-elasticity (MP PBE K_VRH, GPa)",
        "sample": {"n": len(records), "max_atoms": args.max_atoms, "seed": args.seed},
        "protocol": "MLIP cell relax (FIRE+Frechet, fmax 0.05 eV/Å) then Birch–Murnaghan over "
        "±6 % volume, 7 fixed-cell relaxations (fmax 0.05 eV/Å)",
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "models": {},
    }
    if RESULTS.is_file():  # keep other models' results measured on the same sample
        previous = json.loads(RESULTS.read_text())
        if previous.get("sample") == report["sample"]:
            report["models"] = previous.get("models", {})
    for name in args.models:
        started = time.perf_counter()
        results, _ = runners[name](structures)
        wall = time.perf_counter() - started
        summary = summarise(dft, results) | {"wall_time_s": wall}
        summary["per_structure"] = [
            {
                "mp_id": r["mp_id"],
                "formula": r["formula"],
                "n_atoms": len(r["structure"]["sites"]),
                "k_vrh_dft_gpa": r["bulk_modulus_vrh"],
                "b0_mlip_gpa": res.b0_gpa,
                "error": res.error,
            }
            for r, res in zip(records, results, strict=True)
        ]
        report["models"][name] = summary
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))


if __name__ == "__main__":
    main()
