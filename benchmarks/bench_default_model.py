"""Every shipped model against CHGNet 0.3.0 on held-out data: what chooses the default model.

All models run in the same process with the in-house implementations (parity with the `chgnet`
and `sevenn` packages is tested). Energies of raw-PBE models (SevenNet) are MP2020-corrected
(``scoring.corrections``) before any comparison with formation energies or the hull. Sections:

- ``wbm``: ``--n-wbm`` WBM dev structures (DFT-relaxed; measurement only, seeded draw), static
  energies. Formation energy = E/atom − Σ x_i μ_i (MP 2023-02-07); e_above_hull against the shipped
  ``mp20-subset`` hull; stable ⇔ e_hull ≤ 0, labels from the WBM DFT formation energies against the
  same hull.
- ``mp20``: ``--n-mp20`` MP-20 test structures, static formation-energy MAE.
- ``bulk``: ``--n-bulk`` of the held-out 20 % of the MP elastic binaries (≤ 8 atoms): cell
  relaxation, then Birch–Murnaghan over ±6 % volume (7 fixed-cell relaxations), vs DFT K_VRH.
- ``frames``: force (eV/Å) and stress (GPa) MAE on 1,000 random MPtrj frames (off- and near-
  equilibrium) and 1,000 random Alexandria frames (``mlip/*_random_1k.xyz.gz``).
- ``speed``: single points on 200 MP-20 test structures and one batched relaxation of 32 rattled
  ones, the models interleaved; wall and CPU seconds.

Writes benchmarks/results/models.json (sections and models not run keep their previous
results) and prints a markdown table, one column per model.

    OMP_NUM_THREADS=1 python benchmarks/bench_default_model.py --sections wbm mp20 bulk frames speed \\
        --models chgnet-0.3.0 chgnet-les-ft1 sevennet-0 sevennet-l3i5 sevennet-mf-0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
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
os.environ.setdefault("MATSEARCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))

from matsearch.mlip import RelaxSettings, load_model, relax  # noqa: E402
from matsearch.mlip.model import MLIPModel  # noqa: E402
from matsearch.mlip.state import BatchedState  # noqa: E402
from matsearch.mlip.units import EV_PER_A3_IN_GPA  # noqa: E402
from matsearch.scoring.corrections import mp2020_energy_per_atom  # noqa: E402
from training import recipe_data as rd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "models.json"
MODELS = ("chgnet-0.3.0", "chgnet-les-ft1", "sevennet-0", "sevennet-l3i5", "sevennet-mf-0")
FRAME_SETS = {"mptrj": "mptrj_random_1k.xyz.gz", "alexandria": "alexandria_random_1k.xyz.gz"}


def energies_per_atom(model: MLIPModel, structures: list[Structure], batch_size: int = 8) -> np.ndarray:
    """Static energies (eV/atom) in the model's own convention, energy only."""
    out = []
    with torch.no_grad():
        for start in range(0, len(structures), batch_size):
            chunk = structures[start : start + batch_size]
            state = BatchedState.from_structures(chunk, device=model.device, dtype=model.dtype)
            energy = model.compute(state, forces=False, stress=False)["energy"].double().cpu().numpy()
            out.append(energy / np.array([len(s) for s in chunk]))
    return np.concatenate(out)


def mp2020_corrections(structures: list[Structure]) -> np.ndarray:
    """[n] eV/atom the MP2020 scheme adds to a raw PBE energy of each structure (model-independent)."""
    return np.array([mp2020_energy_per_atom(s, 0.0, "raw-pbe") for s in structures])


def on_hull_scale(model: MLIPModel, energies: np.ndarray, corrections: np.ndarray) -> np.ndarray:
    """Energies per atom of `model` on the MP2020-corrected scale of the hull."""
    return energies + corrections if model.energy_convention == "raw-pbe" else energies


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
    refs_per_atom = np.array([hull.formation_energy_per_atom(c, 0.0) for c in compositions])  # −Σ x_i μ_i
    hull_energy = np.array(
        [
            f - hull.e_above_hull(c, f - r)
            for c, f, r in zip(compositions, dft_form, refs_per_atom, strict=True)
        ]
    )
    dft_ehull = dft_form - hull_energy
    corrections = mp2020_corrections(structures)
    out: dict = {"n": len(structures), "dft_stable_fraction": float(np.mean(dft_ehull <= 0))}
    for name, model in models.items():
        started = time.perf_counter()
        form = on_hull_scale(model, energies_per_atom(model, structures), corrections) + refs_per_atom
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


def run_mp20(models: dict[str, MLIPModel], n: int | None) -> dict:
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
    corrections = mp2020_corrections(structures)
    out: dict = {"n": len(structures)}
    for name, model in models.items():
        started = time.perf_counter()
        error = on_hull_scale(model, energies_per_atom(model, structures), corrections) - reference - dft_form
        out[name] = {
            "formation_energy_mae_ev_per_atom": float(np.mean(np.abs(error))),
            "formation_energy_mean_signed_ev_per_atom": float(np.mean(error)),
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
        relaxed = relax(
            structures, model, RelaxSettings(fmax=0.05, steps=500, batch_atoms=128), cell_filter=True
        )
        ok = [i for i, r in enumerate(relaxed) if r.error is None]
        relaxer = MLIPRelaxer.from_model(model, RelaxSettings(batch_atoms=128, prerelax_model=None))
        fitted = bulk_moduli([relaxed[i].structure for i in ok], relaxer, BulkModulusSpec())
        predicted = np.full(len(records), np.nan)
        for i, result in zip(ok, fitted, strict=True):
            if result.b0_gpa is not None:
                predicted[i] = result.b0_gpa
        good = np.isfinite(predicted)
        error = predicted[good] - dft[good]
        out[name] = {
            "n_ok": int(good.sum()),
            "mae_gpa": float(np.mean(np.abs(error))),
            "mean_signed_error_gpa": float(np.mean(error)),
            "median_signed_error_gpa": float(np.median(error)),
            "fraction_softer": float(np.mean(error < 0)),
            "predicted_gpa": [None if not np.isfinite(p) else float(p) for p in predicted],
            "seconds": time.perf_counter() - started,
        }
        print(f"bulk {name}: { {k: v for k, v in out[name].items() if k != 'predicted_gpa'} }", flush=True)
    out["dft_gpa"] = dft.tolist()
    return out


def read_frames(filename: str) -> list:
    """ASE Atoms with DFT energy (eV), forces (eV/Å) and stress (eV/Å³, ASE's sign)."""
    from ase.io import read

    path = Path(os.environ["MATSEARCH_DATA_DIR"]) / "mlip" / filename
    with gzip.open(path, "rt") as handle:
        return read(handle, index=":", format="extxyz")


def run_frames(models: dict[str, MLIPModel]) -> dict:
    from pymatgen.io.ase import AseAtomsAdaptor

    out: dict = {}
    for key, filename in FRAME_SETS.items():
        frames = read_frames(filename)
        structures = [AseAtomsAdaptor.get_structure(atoms) for atoms in frames]
        forces = np.concatenate([atoms.get_forces() for atoms in frames])
        stress = np.stack([atoms.get_stress(voigt=False) for atoms in frames]) * EV_PER_A3_IN_GPA
        out[key] = {"n_frames": len(frames), "n_atoms": len(forces)}
        for name, model in models.items():
            started = time.perf_counter()
            predicted = model.predict(structures, batch_size=4)
            f_error = np.concatenate([p["forces"] for p in predicted]) - forces
            s_error = np.stack([p["stress"] for p in predicted]) - stress
            out[key][name] = {
                "force_mae_ev_per_a": float(np.mean(np.abs(f_error))),
                "stress_mae_gpa": float(np.mean(np.abs(s_error))),
                "seconds": time.perf_counter() - started,
            }
            print(f"frames {key} {name}: {out[key][name]}", flush=True)
    return out


def run_speed(models: dict[str, MLIPModel], repeats: int = 3) -> dict:
    frame = rd.mp20_rows("test", 200, seed=1)
    structures = [Structure.from_str(cif, fmt="cif") for cif in frame["cif"]]
    rattled = [s.copy().perturb(0.05, seed=k) for k, s in enumerate(structures[:32])]
    out: dict = {"n_single_point": len(structures), "n_atoms": sum(len(s) for s in structures), "n_relax": 32}
    walls: dict[str, list[float]] = {name: [] for name in models}
    cpus: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():  # interleaved, so that every model sees the same load
            wall, cpu = time.perf_counter(), time.process_time()
            model.predict(structures, batch_size=4)
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    for name, model in models.items():
        wall, cpu = time.perf_counter(), time.process_time()
        relaxed = relax(
            rattled, model, RelaxSettings(fmax=0.05, steps=300, batch_atoms=128), cell_filter=True
        )
        out[name] = {
            "single_point_s_median": statistics.median(walls[name]),
            "single_point_cpu_s_median": statistics.median(cpus[name]),
            "relax_s": time.perf_counter() - wall,
            "relax_cpu_s": time.process_time() - cpu,
            "relax_mean_steps": float(np.mean([r.steps for r in relaxed])),
        }
        print(f"speed {name}: {out[name]}", flush=True)
    return out


ROWS = [  # label, section, key, format, which way is better
    ("WBM dev: stability F1 (e_hull ≤ 0)", "wbm", "f1", ".3f", "higher"),
    ("WBM dev: formation energy MAE (eV/atom)", "wbm", "formation_energy_mae_ev_per_atom", ".4f", "lower"),
    ("WBM dev: e_hull MAE (eV/atom)", "wbm", "e_hull_mae_ev_per_atom", ".4f", "lower"),
    (
        "MP-20 test: formation energy MAE (eV/atom)",
        "mp20",
        "formation_energy_mae_ev_per_atom",
        ".4f",
        "lower",
    ),
    ("elastic binaries: bulk modulus MAE (GPa)", "bulk", "mae_gpa", ".1f", "lower"),
    ("elastic binaries: mean signed error (GPa)", "bulk", "mean_signed_error_gpa", "+.1f", "nearer 0"),
    ("MPtrj 1k frames: force MAE (eV/Å)", "frames.mptrj", "force_mae_ev_per_a", ".4f", "lower"),
    ("MPtrj 1k frames: stress MAE (GPa)", "frames.mptrj", "stress_mae_gpa", ".3f", "lower"),
    ("Alexandria 1k frames: force MAE (eV/Å)", "frames.alexandria", "force_mae_ev_per_a", ".4f", "lower"),
    ("Alexandria 1k frames: stress MAE (GPa)", "frames.alexandria", "stress_mae_gpa", ".3f", "lower"),
    ("single points, 200 MP-20 (CPU s, median)", "speed", "single_point_cpu_s_median", ".1f", "lower"),
    ("batched relax, 32 rattled (CPU s)", "speed", "relax_cpu_s", ".1f", "lower"),
]


def markdown_table(report: dict, names: list[str]) -> str:
    """One row per measure, one column per model (sections present only)."""
    lines = [
        "| measure | " + " | ".join(f"`{n}`" for n in names) + " | better |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for label, section, key, fmt, better in ROWS:
        part: dict | None = report
        for step in section.split("."):
            part = (part or {}).get(step)
        if not part:
            continue
        cells = [
            format(part[n][key], fmt) if n in part and part[n].get(key) is not None else "—" for n in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {better} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sections", nargs="+", default=["wbm", "mp20", "bulk", "frames", "speed"])
    parser.add_argument("--n-wbm", type=int, default=1000, help="WBM rows (seeded draw)")
    parser.add_argument("--n-mp20", type=int, default=2000, help="MP-20 test rows (seeded draw)")
    parser.add_argument("--n-bulk", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    models = {name: load_model(name, device="cpu") for name in args.models}
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    runners = {
        "wbm": lambda: run_wbm(models, args.n_wbm),
        "mp20": lambda: run_mp20(models, args.n_mp20),
        "bulk": lambda: run_bulk(models, args.n_bulk),
        "frames": lambda: run_frames(models),
        "speed": lambda: run_speed(models),
    }
    for section in args.sections:
        fresh = runners[section]()
        merged = report.get(section, {})
        if section == "frames":
            for key, values in fresh.items():
                merged[key] = {**merged.get(key, {}), **values}
        else:
            merged.update(fresh)
        report[section] = merged
        report["config"] = {
            "date": time.strftime("%Y-%m-%d"),
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), no GPU",
            "n_wbm": args.n_wbm,
            "n_mp20": args.n_mp20,
            "n_bulk": args.n_bulk,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    names = [n for n in MODELS if any(n in part for part in report.values() if isinstance(part, dict))]
    print(markdown_table(report, names or list(args.models)))


if __name__ == "__main__":
    main()
