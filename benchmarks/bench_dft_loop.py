"""The DFT loop measured: real DFT frames as a campaign's ingested results, fine-tune, re-measure.

mlearn Ge, Li, Mo and Si training frames (off-equilibrium PBE relaxation/MD snapshots with energy,
forces and stress) stand in for the ionic steps `matsearch ingest` stores: 1, 5 and 20 frames per
element (seeded draw) go through the same path as `matsearch mlip finetune --from-run`
(``dft.training.training_set`` on raw-PBE frames, 10 % validation split, AtomRef rules of
``finetune``, readout trained, CLI defaults except epochs). Before and after: held-out mlearn test
energy (eV/atom) and force (eV/Å) MAE for the four elements, and MP-20 test formation-energy MAE
(eV/atom; target at most 5 % worse). mlearn energies are on another PBE setup's scale, so the
energy MAE mostly measures the per-element offset, which AtomRef absorbs once an element has
``atom_ref_min_structures`` (10) frames.

    OMP_NUM_THREADS=1 python benchmarks/bench_dft_loop.py --model chgnet-0.3.0 --epochs 20 --n-mp20 300 \\
        --energies fit   # and --energies skip
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MATSEARCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))

from matsearch.dft.read import DftFrame  # noqa: E402
from matsearch.dft.training import FrameSet, labelled_frames, training_set  # noqa: E402
from matsearch.finetune_settings import FinetuneSettings  # noqa: E402
from matsearch.mlip import load_model  # noqa: E402
from matsearch.mlip.training.finetune import (  # noqa: E402
    LabelledStructure,
    evaluate,
    finetune,
    split_dataset,
)
from matsearch.scoring.corrections import mp2020_energy_per_atom  # noqa: E402
from matsearch.structures.known import KnownMaterials  # noqa: E402
from training import recipe_data as rd  # noqa: E402

ELEMENTS = ("Ge", "Li", "Mo", "Si")
MLEARN_KBAR_TO_ASE_GPA = -0.1  # mlearn virial stress: kB, positive = compressive
RESULTS = ROOT / "benchmarks" / "results" / "dft_loop_{}.json"  # by --energies (and anchors)


def mlearn_frames(element: str, split: str) -> list[DftFrame]:
    """mlearn records as DFT frames (energy eV per cell, forces eV/Å, stress GPa ASE sign)."""
    frames = []
    for r in rd.mlearn_records(element, split):
        stress = None
        if r["stress"].size == 6:
            xx, yy, zz, yz, xz, xy = MLEARN_KBAR_TO_ASE_GPA * r["stress"]
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        frames.append(DftFrame(r["structure"], r["energy"], r["forces"], stress))
    return frames


def mp20_formation_mae(model, n: int) -> float:
    """MP-20 test formation-energy MAE (eV/atom): MP2020-scale model energy − MP elemental refs."""
    errors = []
    examples = rd.mp20_examples("test", n)
    predicted = model.predict([e.structure for e in examples], batch_size=16, forces=False, stress=False)
    for e, out in zip(examples, predicted, strict=True):
        natoms = len(e.structure)
        corrected = mp2020_energy_per_atom(e.structure, out["energy"] / natoms, model.energy_convention)
        errors.append(abs(corrected - e.energy / natoms))  # the same μ_i cancel in the difference
    return float(np.mean(errors))


def anchor_examples(model, n: int, seed: int) -> list[LabelledStructure]:
    """`n` known MP-20 train crystals (≤ 12 sites) labelled by `model` itself (energy, forces)."""
    if n == 0:
        return []
    known = KnownMaterials.load()
    table = known.table
    rows = table.index[(table["split"] == "train") & (table["n_sites"] <= 12)]
    picked = np.random.default_rng(seed).choice(rows, size=n, replace=False)
    structures = [known.structure(int(r)) for r in picked]
    predicted = model.predict(structures, batch_size=16, forces=True, stress=False)
    return [
        LabelledStructure(s, p["energy"], p["forces"]) for s, p in zip(structures, predicted, strict=True)
    ]


def measure(model, test: dict[str, list[LabelledStructure]], n_mp20: int) -> dict:
    per = {el: evaluate(model, frames, batch_size=4) for el, frames in test.items()}
    return {
        "mlearn_energy_mae_ev_per_atom": float(np.mean([m["energy_mae_ev_per_atom"] for m in per.values()])),
        "mlearn_forces_mae_ev_per_a": float(np.mean([m["forces_mae_ev_per_a"] for m in per.values()])),
        "per_element": per,
        "mp20_formation_mae_ev_per_atom": mp20_formation_mae(model, n_mp20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="chgnet-0.3.0")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--n-mp20", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (the CLI's default 1e-3)")
    parser.add_argument(
        "--energies",
        choices=("fit", "skip"),
        default="fit",
        help="fit: frames as MP-compatible PBE (energies fitted); skip: as PBE from another setup "
        "(not comparable with the hull: forces and stress only, as dft.training does for them)",
    )
    parser.add_argument(
        "--anchors",
        type=int,
        default=0,
        help="experiment: add this many MP-20 train structures from the shipped known-materials index, "
        "labelled with the base model's own energy and forces (self-distillation against drift)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    test = {el: labelled_frames(mlearn_frames(el, "test"), 0.0) for el in ELEMENTS}
    pools = {el: mlearn_frames(el, "training") for el in ELEMENTS}
    rng = np.random.default_rng(args.seed)
    orders = {el: rng.permutation(len(pool)) for el, pool in pools.items()}
    base = load_model(args.model, device="cpu")
    t0 = time.time()
    results = {"before": measure(base, test, args.n_mp20), "after": {}}
    print(
        "before", json.dumps({k: v for k, v in results["before"].items() if k != "per_element"}), flush=True
    )
    for n in args.sizes:
        correction = 0.0 if args.energies == "fit" else None  # elemental: MP2020 adds nothing
        frame_sets = [FrameSet([pools[el][k] for k in orders[el][:n]], "GGA", correction) for el in ELEMENTS]
        model = load_model(args.model, device="cpu")
        dataset = training_set(frame_sets, model.energy_convention)
        train, validation = split_dataset(dataset, 0.1, args.seed)
        train += anchor_examples(model, args.anchors, args.seed)
        started = time.time()
        fit = finetune(
            model, train, FinetuneSettings(epochs=args.epochs, batch_size=4, lr=args.lr), validation
        )
        row = measure(model, test, args.n_mp20)
        row.update(
            n_frames=len(dataset),
            n_train=len(train),
            atom_ref_refit=fit.atom_ref_refit,
            finetune_seconds=time.time() - started,
        )
        results["after"][str(n)] = row
        print(n, json.dumps({k: v for k, v in row.items() if k != "per_element"}), flush=True)
    results["config"] = {
        "date": "2026-12-06",
        "machine": f"{platform.machine()}, 2 shared CPU cores, 1 torch thread",
        "model": args.model,
        "epochs": args.epochs,
        "energies": args.energies,
        "anchors": args.anchors,
        "lr": args.lr,
        "n_mp20": args.n_mp20,
        "seconds": time.time() - t0,
    }
    tag = args.energies + (f"_anchors{args.anchors}" if args.anchors else "")
    tag += "" if args.lr == 1e-3 else f"_lr{args.lr:g}"
    Path(str(RESULTS).format(tag)).write_text(json.dumps(results, indent=2) + "\n")
    b = results["before"]
    print("\n| frames/element | mlearn E MAE (eV/atom) | mlearn F MAE (eV/Å) | MP-20 E_form MAE (eV/atom) |")
    print("|---|---|---|---|")
    print(
        f"| 0 (base) | {b['mlearn_energy_mae_ev_per_atom']:.4f} | {b['mlearn_forces_mae_ev_per_a']:.4f} | "
        f"{b['mp20_formation_mae_ev_per_atom']:.4f} |"
    )
    for n, r in results["after"].items():
        print(
            f"| {n} | {r['mlearn_energy_mae_ev_per_atom']:.4f} | {r['mlearn_forces_mae_ev_per_a']:.4f} | "
            f"{r['mp20_formation_mae_ev_per_atom']:.4f} |"
        )


if __name__ == "__main__":
    main()
