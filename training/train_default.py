"""Recipe of the shipped model ``chgnet-les-ft1``: CHGNet 0.3.0 fine-tuned, pair term, LES head.

Steps (one command, seeded, one torch thread):

1. Load CHGNet 0.3.0 (``default``), attach a Latent Ewald head (σ = 1 Å, dl = 2 Å) whose zero
   output layer gets small seeded random weights, and a zero species-pair correction.
2. Data (``recipe_data``): MP-20 train structures with absolute MP-compatible total energies and
   MPtrj frames; mlearn training sets, HfO2 OUTCARs and MP elemental polymorphs as energy
   differences within each set; the non-held-out MP elastic binaries
   as energy–volume curvature targets (copies at −6…+6 % volume with Birch–Murnaghan energy
   differences from the DFT K_VRH, B0' = 4; cubic ones weighted 4×, layered ones left out).
   Validation (early stopping): MP-20 val sample, mlearn validation part, 10 % of the
   non-held-out elastic binaries. Held out entirely: MP-20 test, 20 % of the elastic binaries,
   mlearn test, WBM.
3. Backbone below the last atom convolution frozen; that block's inputs are cached once. Least-
   squares AtomRef refit on the absolute-energy examples, then the last atom convolution, the
   readout, a species-pair correction (``matsearch.mlip.heads.pair``), the head and a per-element AtomRef
   shift are fitted (``matsearch.mlip.training.cached_fit``) with early stopping on the validation loss;
   the best model is written as it improves, so an interrupted run leaves a usable file. With
   ``--ship`` it is copied to ``matsearch/mlip/models/`` (model card: docs/models/chgnet-les-ft1.md).

    MATSEARCH_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python -m training.train_default \
        --out training/out --ship
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.pair import PairCorrection
from matsearch.mlip.model import ModelInfo
from matsearch.mlip.training.cached_fit import (
    CachedFitSettings,
    cache_batches,
    fit_cached,
    pack_batches,
    predict_cached,
    refit_references,
)
from matsearch.mlip.training.eos_targets import bulk_modulus_from_energies
from training import recipe_data as rd

MODEL_NAME = "chgnet-les-ft1"
SHIPPED = Path(__file__).resolve().parents[1] / "matsearch" / "mlip" / "models" / f"{MODEL_NAME}.pt"
logger = logging.getLogger("train_default")


def build_sets(args: argparse.Namespace) -> dict[str, list]:
    """Training and validation examples (see module docstring)."""
    elastic = rd.elastic_split(rd.elastic_records(), rd.SEED)
    mlearn = rd.mlearn_examples("training", weight=args.mlearn_weight)
    train = (
        rd.mp20_examples("train", args.n_mp20, weight=1.0)
        + rd.elemental_examples(weight=1.0)
        + rd.mptrj_examples(weight=1.0)
        + mlearn["train"]
        + rd.hfo2_examples(weight=args.mlearn_weight)
        + rd.eos_examples(elastic["train"][: args.n_elastic], args.eos_weight, args.noncubic_factor)
    )
    validation = (
        rd.mp20_examples("val", args.n_mp20_val, weight=1.0)
        + mlearn["validation"]
        + rd.eos_examples(elastic["validation"], args.eos_weight, args.noncubic_factor)
    )
    return {"train": train, "validation": validation}


def eos_metrics(examples: list, energies: np.ndarray) -> dict[str, float]:
    """Bulk modulus (GPa) of the model's energies over each strained group vs the DFT K_VRH."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        if e.group and e.group.startswith("eos:"):
            groups.setdefault(e.group, []).append(i)
    errors = []
    for members in groups.values():
        volumes = np.array([examples[i].structure.volume for i in members])
        v0 = float(np.median(volumes))
        predicted = bulk_modulus_from_energies(volumes, energies[members], v0)
        target = bulk_modulus_from_energies(volumes, np.array([examples[i].energy for i in members]), v0)
        errors.append(predicted - target)
    errors_array = np.array(errors)
    if not len(errors_array):
        return {}
    return {"eos_b_mae_gpa": float(np.abs(errors_array).mean()), "eos_b_mse_gpa": float(errors_array.mean())}


def absolute_mae(examples: list, energies: np.ndarray) -> float:
    """MAE (eV/atom) over the absolute-energy examples."""
    rows = [i for i, e in enumerate(examples) if e.group is None]
    n = np.array([len(examples[i].structure) for i in rows])
    labels = np.array([examples[i].energy for i in rows])
    return float(np.mean(np.abs(energies[rows] - labels) / n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/out"))
    parser.add_argument("--n-mp20", type=int, default=6000, help="MP-20 train structures (seeded draw)")
    parser.add_argument("--n-mp20-val", type=int, default=500)
    parser.add_argument("--n-elastic", type=int, default=None, help="cap on training elastic binaries")
    parser.add_argument("--eos-weight", type=float, default=100.0)
    parser.add_argument("--noncubic-factor", type=float, default=0.25)
    parser.add_argument("--mlearn-weight", type=float, default=1.0)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--head-lr", type=float, default=5e-5)
    parser.add_argument("--pair-lr", type=float, default=1e-5)
    parser.add_argument("--atom-ref-lr", type=float, default=2e-5)
    parser.add_argument(
        "--slope-weight", type=float, default=0.1, help="weight of the E(V) slope (pressure) at DFT volume"
    )
    parser.add_argument(
        "--keep-atom-ref", action="store_true", help="keep CHGNet's AtomRef: no least-squares refit, no shift"
    )
    parser.add_argument("--max-minutes", type=float, default=33.0, help="wall limit of the fit itself")
    parser.add_argument("--seed", type=int, default=rd.SEED)
    parser.add_argument("--ship", action="store_true", help=f"copy the best model to {SHIPPED}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    model = load_model("default", device="cpu", dtype=torch.float32)
    head = attach_long_range_head(model, "les", sigma=1.0, dl=2.0)
    head.prepare_for_training(generator=torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    model.pair_correction = PairCorrection(cutoff=model.config.atom_cutoff).to(model.dtype)

    sets = build_sets(args)
    logger.info("examples: train %d, validation %d", len(sets["train"]), len(sets["validation"]))
    settings = CachedFitSettings(
        max_epochs=args.max_epochs,
        patience=args.patience,
        lr=args.lr,
        head_lr=args.head_lr,
        pair_lr=args.pair_lr,
        atom_ref_lr=args.atom_ref_lr,
        train_layers=("atom_convs.3", "readout", "long_range", "pair_correction"),
        fit_atom_ref=not args.keep_atom_ref,
        slope_weight=args.slope_weight,
        seed=args.seed,
        max_seconds=60 * args.max_minutes,
    )
    cached = {}
    for name, examples in sets.items():
        batches = pack_batches(
            examples, settings.max_batch_atoms, settings.max_batch_structures, settings.group_chunk, args.seed
        )
        cached[name] = cache_batches(model, examples, batches)
        logger.info(
            "cached %s: %d batches (%.0f s so far)", name, len(batches), time.perf_counter() - started
        )
    cache_seconds = time.perf_counter() - started
    shift = {} if args.keep_atom_ref else refit_references(model, sets["train"], cached["train"])
    logger.info("AtomRef least-squares shift (eV): %s", {k: round(v, 4) for k, v in shift.items()})

    def metrics(current) -> dict[str, float]:
        energies = predict_cached(current, cached["validation"], len(sets["validation"]))
        return {"val_mp20_mae_ev_per_atom": absolute_mae(sets["validation"], energies)} | eos_metrics(
            sets["validation"], energies
        )

    best_path = args.out / f"{MODEL_NAME}.pt"
    summary: dict = {
        "model": MODEL_NAME,
        "command": "python -m training.train_default "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("out", "ship", "keep_atom_ref") and v is not None
        )
        + (" --keep-atom-ref" if args.keep_atom_ref else ""),
        "seed": args.seed,
        "sizes": {k: len(v) for k, v in sets.items()},
        "settings": {
            k: (v if np.isfinite(v) else None) if isinstance(v, float) else v
            for k, v in vars(settings).items()
        },
        "atom_ref_least_squares_shift_ev": shift,
        "cache_seconds": cache_seconds,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": 1},
    }

    def save(current, record) -> None:
        current.info = ModelInfo(
            name=MODEL_NAME,
            source="CHGNet 0.3.0; last atom conv, readout, pair correction, Latent Ewald head and "
            f"AtomRef fitted by training/train_default.py (seed {args.seed}, epoch {int(record['epoch'])})",
        )
        current.save(best_path)
        summary["best"] = record
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    result = fit_cached(model, cached["train"], cached["validation"], settings, save, metrics)
    summary.update(
        history=result.history,
        best_epoch=result.best_epoch,
        fit_seconds=result.seconds,
        total_seconds=time.perf_counter() - started,
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("done: best epoch %d, %.0f s", result.best_epoch, summary["total_seconds"])
    if args.ship and best_path.is_file():
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best_path, SHIPPED)


if __name__ == "__main__":
    main()
