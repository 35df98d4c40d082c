"""Fine-tuning the NequIP backbone on a small real set: mlearn Si (Zuo et al. 2020).

The base model (``--base``, SevenNet-0) is fine-tuned on the mlearn Si training frames (energies and
forces) with ``matsearch.mlip.training.finetune`` and measured before and after on:

- the held-out mlearn Si test frames: force MAE (eV/Å) and energy MAE (eV/atom) after removing the
  mean offset (mlearn's DFT settings put Si on another absolute scale than MP's);
- ``--n-mp20`` MP-20 test structures: formation-energy MAE against MP (MP2020-corrected), which
  must not worsen by more than 5 %.

mlearn's energies are aligned to the base model's scale first by one constant per atom (the mean
difference on the training frames), so the fit learns energy differences and keeps the model's
AtomRef, on which every formation energy rests.

    python benchmarks/bench_finetune_nequip.py [--base sevennet-0] [--epochs 20]

Writes benchmarks/results/finetune_nequip.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("MATSEARCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))

from bench_default_model import energies_per_atom, mp2020_corrections, on_hull_scale  # noqa: E402

from matsearch.finetune_settings import FinetuneSettings  # noqa: E402
from matsearch.mlip import load_model  # noqa: E402
from matsearch.mlip.model import MLIPModel  # noqa: E402
from matsearch.mlip.training.finetune import LabelledStructure, finetune  # noqa: E402
from training import recipe_data as rd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "finetune_nequip.json"


def frame_errors(model: MLIPModel, records: list[dict]) -> dict[str, float]:
    """Force MAE (eV/Å) and offset-removed energy MAE (eV/atom) on mlearn records."""
    predicted = model.predict([r["structure"] for r in records], batch_size=4, stress=False)
    n_atoms = np.array([len(r["structure"]) for r in records])
    error = (np.array([p["energy"] for p in predicted]) - np.array([r["energy"] for r in records])) / n_atoms
    forces = np.concatenate([p["forces"] - r["forces"] for p, r in zip(predicted, records, strict=True)])
    return {
        "force_mae_ev_per_a": float(np.mean(np.abs(forces))),
        "energy_mae_offset_removed_ev_per_atom": float(np.mean(np.abs(error - error.mean()))),
        "energy_offset_ev_per_atom": float(error.mean()),
    }


def mp20_mae(
    model: MLIPModel, structures: list[Structure], dft: np.ndarray, corrections: np.ndarray
) -> float:
    refs = rd.elemental_refs()
    reference = np.array(
        [
            sum(n * refs[el.symbol] for el, n in s.composition.element_composition.items()) / len(s)
            for s in structures
        ]
    )
    formation = on_hull_scale(model, energies_per_atom(model, structures), corrections) - reference
    return float(np.mean(np.abs(formation - dft)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="sevennet-0")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--train-layer", action="append", default=None, help="default: readout_hidden, readout"
    )
    parser.add_argument("--n-mp20", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    layers = tuple(args.train_layer or ("readout_hidden", "readout"))
    train, test = rd.mlearn_records("Si", "training"), rd.mlearn_records("Si", "test")
    frame = rd.mp20_rows("test", args.n_mp20)
    structures = [Structure.from_str(cif, fmt="cif") for cif in frame["cif"]]
    dft = frame["formation_energy_per_atom"].to_numpy(float)
    corrections = mp2020_corrections(structures)

    model = load_model(args.base, device="cpu")
    before = {
        "mlearn_si_test": frame_errors(model, test),
        "mp20_mae_ev_per_atom": mp20_mae(model, structures, dft, corrections),
    }
    print(f"before: {before}", flush=True)
    offset = frame_errors(model, train)["energy_offset_ev_per_atom"]  # model − DFT, eV/atom
    dataset = [
        LabelledStructure(r["structure"], r["energy"] + offset * len(r["structure"]), forces=r["forces"])
        for r in train
    ]
    settings = FinetuneSettings(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=8,
        train_layers=layers,
        stress_weight=0.0,
        refit_atom_ref=False,
    )
    started = time.perf_counter()
    history = []
    result = finetune(
        model, dataset, settings, on_epoch=lambda record: (history.append(record), print(record, flush=True))
    )
    seconds = time.perf_counter() - started
    after = {
        "mlearn_si_test": frame_errors(model, test),
        "mp20_mae_ev_per_atom": mp20_mae(model, structures, dft, corrections),
    }
    print(f"after: {after}", flush=True)
    report = {
        "base": args.base,
        "train_layers": list(layers),
        "epochs": args.epochs,
        "lr": args.lr,
        "n_train": len(train),
        "n_test": len(test),
        "n_mp20": len(structures),
        "label_offset_ev_per_atom": offset,
        "before": before,
        "after": after,
        "mp20_change_percent": 100 * (after["mp20_mae_ev_per_atom"] / before["mp20_mae_ev_per_atom"] - 1),
        "train_seconds": seconds,
        "history": history,
        "final_train": result.final_train,
        "trained_parameters": result.trained_parameters,
        "config": {
            "date": time.strftime("%Y-%m-%d"),
            "threads": 1,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), no GPU",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    b, a = before["mlearn_si_test"], after["mlearn_si_test"]
    print("| measure | before | after |\n|---|---|---|")
    print(
        f"| mlearn Si test force MAE (eV/Å) | {b['force_mae_ev_per_a']:.4f} | {a['force_mae_ev_per_a']:.4f} |"
    )
    energy = "energy_mae_offset_removed_ev_per_atom"
    print(
        f"| mlearn Si test energy MAE, offset removed (meV/atom) | {1e3 * b[energy]:.1f} "
        f"| {1e3 * a[energy]:.1f} |"
    )
    print(
        f"| MP-20 test formation MAE (eV/atom, {len(structures)}) | {before['mp20_mae_ev_per_atom']:.4f} "
        f"| {after['mp20_mae_ev_per_atom']:.4f} ({report['mp20_change_percent']:+.1f} %) |"
    )


if __name__ == "__main__":
    main()
