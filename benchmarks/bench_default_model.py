"""Trained model vs CHGNet 0.3.0 on held-out data: the must-show measures of issue 11.

Both models run in the same process with the in-house implementation (``default`` is CHGNet
0.3.0 exactly; see RESULTS.md for the parity with the ``chgnet`` package). Sections:

- ``wbm``: WBM dev structures (DFT-relaxed; measurement only), static energies. Formation energy
  = E/atom − Σ x_i μ_i (MP 2023-02-07); e_above_hull against the shipped ``mp20-subset`` hull;
  stable ⇔ e_hull ≤ 0, labels from the WBM DFT formation energies against the same hull.
- ``mp20``: MP-20 test split, static formation-energy MAE; and a relaxation (FIRE + Frechet,
  fmax 0.05 eV/Å) of a sample started from the DFT structures, matched back (StructureMatcher).
- ``bulk``: the recipe's held-out 20 % of the MP elastic binaries (≤ 8 atoms, K_VRH > 0): cell
  relaxation, then Birch–Murnaghan over ±6 % volume (7 fixed-cell relaxations), vs DFT K_VRH.
- ``mlearn``: mlearn test sets (Cu, Ge, Li, Mo, Ni, Si): force MAE (eV/Å).
- ``longrange``: the trained model's Latent Ewald energy and forces next to the totals.
- ``speed``: single points (batches of 64) and one batched relaxation, both models.

Writes benchmarks/results/default_model.json (sections not run keep their previous results).

    MATSEARCH_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_default_model.py \\
        --sections wbm mp20 bulk mlearn longrange speed
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matsearch.mlip import load_model  # noqa: E402
from matsearch.mlip.model import MLIPModel  # noqa: E402
from matsearch.mlip.optimizers.relax import relax  # noqa: E402
from matsearch.mlip.state import BatchedState  # noqa: E402
from training import recipe_data as rd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "default_model.json"
REFERENCE = "default"


def energies_per_atom(model: MLIPModel, structures: list[Structure], batch_size: int = 32) -> np.ndarray:
    """Static energies (eV/atom), energy only."""
    out = []
    with torch.no_grad():
        for start in range(0, len(structures), batch_size):
            chunk = structures[start : start + batch_size]
            state = BatchedState.from_structures(chunk, device=model.device, dtype=model.dtype)
            energy = model.compute(state, forces=False, stress=False)["energy"].double().numpy()
            out.append(energy / np.array([len(s) for s in chunk]))
    return np.concatenate(out)


def f1_score(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of boolean predictions."""
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": float(np.mean(predicted == actual)),
    }


def run_wbm(models: dict[str, MLIPModel], n: int | None) -> dict:
    from matsearch.scoring.hull import HullReference

    rows = rd.wbm_rows(n)
    structures = [Structure.from_str(cif, fmt="cif") for cif in rows["cif"]]
    hull = HullReference.from_registry("mp20-subset")
    dft_form = rows["formation_energy_per_atom"].to_numpy(float)
    compositions = [s.composition for s in structures]
    refs_per_atom = np.array(
        [hull.formation_energy_per_atom(c, 0.0) for c in compositions]
    )  # −Σ x_i μ_i, eV/atom
    hull_energy = np.empty(len(structures))
    for i, c in enumerate(compositions):
        # e_hull of the DFT label: formation energy minus the hull energy at that composition
        hull_energy[i] = dft_form[i] - hull.e_above_hull(c, dft_form[i] - refs_per_atom[i])
    dft_ehull = dft_form - hull_energy
    out: dict = {"n": len(structures), "dft_stable_fraction": float(np.mean(dft_ehull <= 0))}
    for name, model in models.items():
        started = time.perf_counter()
        form = energies_per_atom(model, structures) + refs_per_atom
        ehull = form - hull_energy
        error = form - dft_form
        out[name] = {
            "formation_energy_mae_ev_per_atom": float(np.mean(np.abs(error))),
            "formation_energy_mean_signed_ev_per_atom": float(np.mean(error)),
            "e_hull_mae_ev_per_atom": float(np.mean(np.abs(ehull - dft_ehull))),
            **f1_score(ehull <= 0, dft_ehull <= 0),
            "seconds": time.perf_counter() - started,
        }
        print(f"wbm {name}: {out[name]}", flush=True)
    return out


def run_mp20(models: dict[str, MLIPModel], n: int | None, n_relax: int) -> dict:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    frame = rd.mp20_rows("test", n)
    structures = [Structure.from_str(cif, fmt="cif") for cif in frame["cif"]]
    refs = rd.elemental_refs()
    dft_form = frame["formation_energy_per_atom"].to_numpy(float)
    reference = np.array(
        [
            sum(amount * refs[el.symbol] for el, amount in s.composition.element_composition.items()) / len(s)
            for s in structures
        ]
    )
    picked = np.random.default_rng(rd.SEED).choice(
        len(structures), size=min(n_relax, len(structures)), replace=False
    )
    to_relax = [structures[i] for i in sorted(picked)]
    matcher = StructureMatcher()
    out: dict = {"n": len(structures), "n_relaxed": len(to_relax)}
    for name, model in models.items():
        started = time.perf_counter()
        error = energies_per_atom(model, structures) - reference - dft_form
        relaxed = relax(to_relax, model, fmax=0.05, steps=500, cell_filter=True)
        matched = [
            r.structure is not None and matcher.fit(r.structure, s)
            for r, s in zip(relaxed, to_relax, strict=True)
        ]
        out[name] = {
            "formation_energy_mae_ev_per_atom": float(np.mean(np.abs(error))),
            "formation_energy_mean_signed_ev_per_atom": float(np.mean(error)),
            "relaxed_match_rate": float(np.mean(matched)),
            "relaxed_converged": int(sum(r.converged for r in relaxed)),
            "seconds": time.perf_counter() - started,
        }
        print(f"mp20 {name}: {out[name]}", flush=True)
    return out


def run_bulk(models: dict[str, MLIPModel], n: int) -> dict:
    from matsearch.evaluation.bulk_modulus import bulk_moduli
    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
    from matsearch.spec import BulkModulusSpec

    holdout = rd.elastic_split(rd.elastic_records(), rd.SEED)["holdout"]
    eligible = [r for r in holdout if rd.usable_elastic(r, max_atoms=8)]
    picked = np.random.default_rng(rd.SEED).choice(len(eligible), size=min(n, len(eligible)), replace=False)
    records = [eligible[i] for i in sorted(picked)]
    structures = [Structure.from_dict(r["structure"]) for r in records]
    dft = np.array([r["bulk_modulus_vrh"] for r in records], dtype=float)
    out: dict = {
        "n": len(records),
        "n_eligible_holdout": len(eligible),
        "mp_ids": [r["mp_id"] for r in records],
    }
    for name, model in models.items():
        started = time.perf_counter()
        relaxed = relax(structures, model, fmax=0.05, steps=500, cell_filter=True)
        ok = [i for i, r in enumerate(relaxed) if r.error is None]
        fitted = bulk_moduli(
            [relaxed[i].structure for i in ok], MLIPRelaxer.from_model(model), BulkModulusSpec()
        )
        predicted = np.full(len(records), np.nan)
        for i, result in zip(ok, fitted, strict=True):
            if result.b0_gpa is not None:
                predicted[i] = result.b0_gpa
        good = np.isfinite(predicted)
        error = predicted[good] - dft[good]
        stiff = dft[good] > 100
        out[name] = {
            "n_ok": int(good.sum()),
            "mae_gpa": float(np.mean(np.abs(error))),
            "mean_signed_error_gpa": float(np.mean(error)),
            "median_signed_error_gpa": float(np.median(error)),
            "mean_signed_error_k_gt_100_gpa": float(np.mean(error[stiff])) if stiff.any() else None,
            "fraction_softer": float(np.mean(error < 0)),
            "predicted_gpa": [None if not np.isfinite(p) else float(p) for p in predicted],
            "seconds": time.perf_counter() - started,
        }
        print(f"bulk {name}: { {k: v for k, v in out[name].items() if k != 'predicted_gpa'} }", flush=True)
    out["dft_gpa"] = dft.tolist()
    return out


def run_mlearn(models: dict[str, MLIPModel]) -> dict:
    out: dict = {}
    for element in rd.MLEARN_TEST:
        records = rd.mlearn_records(element, "test")
        out[element] = {"n": len(records)}
        for name, model in models.items():
            errors = []
            for start in range(0, len(records), 8):
                chunk = records[start : start + 8]
                state = BatchedState.from_structures([r["structure"] for r in chunk], dtype=model.dtype)
                forces = model.compute(state, stress=False)["forces"].double().numpy()
                errors.append(np.abs(forces - np.concatenate([r["forces"] for r in chunk])).ravel())
            out[element][name] = float(np.mean(np.concatenate(errors)))
    for name in models:
        out[f"mean_{name}"] = float(np.mean([out[e][name] for e in rd.MLEARN_TEST]))
    print(f"mlearn: {out}", flush=True)
    return out


def run_longrange(model: MLIPModel, n: int) -> dict:
    """|E_LES| per atom and LES force share on MP-20 test structures and mlearn test frames."""
    head = model.long_range
    if head is None:
        return {"present": False}
    frame = rd.mp20_rows("test", n)
    sets = {
        "mp20_test": [Structure.from_str(cif, fmt="cif") for cif in frame["cif"]],
        "mlearn_test": [r["structure"] for e in rd.MLEARN_TEST for r in rd.mlearn_records(e, "test")[:10]],
    }
    out: dict = {"present": True, "config": dict(head.config)}
    for key, structures in sets.items():
        e_lr, e_total, f_lr, f_total, q = [], [], [], [], []
        for start in range(0, len(structures), 16):
            chunk = structures[start : start + 16]
            state = BatchedState.from_structures(chunk, dtype=model.dtype)
            full = model.compute(state, stress=False)
            model.long_range = None
            try:
                short = model.compute(state, stress=False)
            finally:
                model.long_range = head
            n_atoms = np.array([len(s) for s in chunk])
            e_lr.append((full["energy"] - short["energy"]).double().numpy() / n_atoms)
            e_total.append(full["energy"].double().numpy() / n_atoms)
            f_lr.append((full["forces"] - short["forces"]).double().numpy())
            f_total.append(full["forces"].double().numpy())
            q.append(full["charges"].double().numpy())
        e_lr_a, f_lr_a, f_tot_a = np.concatenate(e_lr), np.concatenate(f_lr), np.concatenate(f_total)
        out[key] = {
            "n": len(structures),
            "mean_abs_energy_ev_per_atom": float(np.mean(np.abs(e_lr_a))),
            "max_abs_energy_ev_per_atom": float(np.max(np.abs(e_lr_a))),
            "mean_abs_total_energy_ev_per_atom": float(np.mean(np.abs(np.concatenate(e_total)))),
            "rms_force_ev_per_a": float(np.sqrt(np.mean(f_lr_a**2))),
            "rms_total_force_ev_per_a": float(np.sqrt(np.mean(f_tot_a**2))),
            "mean_abs_latent_charge_e": float(np.mean(np.abs(np.concatenate(q)))),
        }
    print(f"longrange: {out}", flush=True)
    return out


def run_speed(models: dict[str, MLIPModel], repeats: int = 5) -> dict:
    frame = rd.mp20_rows("test", 200, seed=1)
    structures = [Structure.from_str(cif, fmt="cif") for cif in frame["cif"]]
    rattled = []
    for s in structures[:32]:
        s = s.copy()
        s.perturb(0.05)
        rattled.append(s)
    out: dict = {"n_single_point": len(structures), "n_atoms": sum(len(s) for s in structures), "n_relax": 32}
    for name, model in models.items():
        times = []
        for _ in range(repeats):
            for key in models:  # interleave the models so that both see the same load
                started = time.perf_counter()
                models[key].predict(structures, batch_size=64)
                if key == name:
                    times.append(time.perf_counter() - started)
        started = time.perf_counter()
        relaxed = relax(rattled, model, fmax=0.05, steps=300, cell_filter=True)
        out[name] = {
            "single_point_s_median": statistics.median(times),
            "single_point_s_all": times,
            "relax_s": time.perf_counter() - started,
            "relax_mean_steps": float(np.mean([r.steps for r in relaxed])),
        }
        print(f"speed {name}: {out[name]}", flush=True)
    return out


def markdown_table(report: dict) -> str:
    """The must-show measures of both models as a markdown table (sections present only)."""
    ref, new = REFERENCE, "trained"
    rows = []

    def row(label: str, section: str, key: str, fmt: str, goal: str) -> None:
        part = report.get(section)
        if part and ref in part and new in part and part[ref].get(key) is not None:
            rows.append(f"| {label} | {part[ref][key]:{fmt}} | {part[new][key]:{fmt}} | {goal} |")

    row("WBM dev: stability F1 (e_hull ≤ 0)", "wbm", "f1", ".3f", "higher")
    row("WBM dev: formation energy MAE (eV/atom)", "wbm", "formation_energy_mae_ev_per_atom", ".4f", "lower")
    row(
        "WBM dev: formation energy mean signed (eV/atom)",
        "wbm",
        "formation_energy_mean_signed_ev_per_atom",
        "+.4f",
        "—",
    )
    row("held-out binaries: bulk modulus MAE (GPa)", "bulk", "mae_gpa", ".1f", "≥ 25 % lower")
    row("held-out binaries: mean signed error (GPa)", "bulk", "mean_signed_error_gpa", "+.1f", "|·| ≤ 2")
    row(
        "MP-20 test: formation energy MAE (eV/atom)",
        "mp20",
        "formation_energy_mae_ev_per_atom",
        ".4f",
        "not worse",
    )
    row("MP-20 test: relaxed matches DFT structure", "mp20", "relaxed_match_rate", ".2f", "not lower")
    if "mlearn" in report:
        m = report["mlearn"]
        rows.append(
            f"| mlearn test: force MAE, mean of 6 (eV/Å) | {m[f'mean_{ref}']:.4f} | {m[f'mean_{new}']:.4f} "
            "| not worse |"
        )
    row("single points, 200 MP-20 (s, median of 5)", "speed", "single_point_s_median", ".2f", "within 10 %")
    row("batched relax, 32 rattled (s)", "speed", "relax_s", ".1f", "within 10 %")
    header = ["| measure | CHGNet 0.3.0 (`default`) | trained | goal |", "|---|---|---|---|"]
    return "\n".join(header + rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="chgnet-les-ft1", help="trained model name or file")
    parser.add_argument(
        "--sections", nargs="+", default=["wbm", "mp20", "bulk", "mlearn", "longrange", "speed"]
    )
    parser.add_argument("--n-wbm", type=int, default=None, help="WBM rows (seeded draw); all by default")
    parser.add_argument("--n-mp20", type=int, default=None, help="MP-20 test rows; all by default")
    parser.add_argument("--n-mp20-relax", type=int, default=100)
    parser.add_argument("--n-bulk", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    models = {
        REFERENCE: load_model(REFERENCE, device="cpu"),
        "trained": load_model(args.model, device="cpu"),
    }
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.update(
        {
            "reference": "default (CHGNet 0.3.0, in-house implementation)",
            "trained": args.model,
            "machine": {
                "platform": platform.platform(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "note": "2 CPU cores shared with other jobs, no GPU",
            },
        }
    )
    runners = {
        "wbm": lambda: run_wbm(models, args.n_wbm),
        "mp20": lambda: run_mp20(models, args.n_mp20, args.n_mp20_relax),
        "bulk": lambda: run_bulk(models, args.n_bulk),
        "mlearn": lambda: run_mlearn(models),
        "longrange": lambda: run_longrange(models["trained"], 300),
        "speed": lambda: run_speed(models),
    }
    for section in args.sections:
        started = time.perf_counter()
        report[section] = runners[section]() | {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        report[section]["section_seconds"] = time.perf_counter() - started
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))


if __name__ == "__main__":
    main()
