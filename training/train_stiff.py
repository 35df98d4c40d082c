"""Pilot recipe against PES softening: CHGNet 0.3.0 fine-tuned on forces and stresses (not shipped).

Universal potentials are systematically too soft: on the mlearn training frames CHGNet's forces
are 0.41× (Ge), 0.60× (Mo), 0.81× (Li) of DFT's (least-squares slope over 20 frames each), and
its bulk moduli are too low on average. This recipe trains chosen blocks (default: the upper
interaction blocks, the readout and a Latent Ewald head) with forces and stresses computed by
autograd through the whole model (``matsearch.mlip.train.finetune``), on:

- MP-20 train structures (DFT minima): MP-compatible total energies and forces 0;
- cubic MP elastic binaries (not held out): copies at V/V0 − 1 = ±2 %, ±4 % (and 0) labelled with
  the change of the Birch–Murnaghan pressure of their DFT K_VRH (B0' = 4) as a hydrostatic stress,
  exact for cubic symmetry (see ``pressure_examples``), weighted by 1/K²;
- mlearn Ge, Li, Mo, Si training frames (off-equilibrium, another DFT set): forces and stress;
- the MPtrj frames (energy, forces, stress) and the HfO2 OUTCAR frames (forces, stress).

After every epoch the model is saved and measured: MP-20 val energy MAE, and the bulk modulus of
the validation elastic binaries from the model's stress at ±2 % (cubic, unrelaxed copies). Result
(docs/models/chgnet-les-ft1.md, "Full-graph pilots"): the defaults, 6 epochs, moved the validation
bulk-modulus MAE by under 1 % (mean signed −7.0 → −6.3 GPa); smaller pilots without the mlearn
frames made it softer. No model from it is shipped. One torch thread, seeded.

    MATSEARCH_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python -m training.train_stiff --out training/stiff
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.stress import voigt_6_to_full_3x3_stress
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.finetune_settings import FinetuneSettings
from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.model import MLIPModel, ModelInfo
from matsearch.mlip.state import BatchedState
from matsearch.mlip.training.eos_targets import birch_murnaghan_pressure_gpa
from matsearch.mlip.training.finetune import (
    LabelledStructure,
    evaluate,
    finetune,
)
from matsearch.mlip.units import EV_PER_A3_IN_GPA
from training import recipe_data as rd

MODEL_NAME = "chgnet-les-stiff-pilot"
TRAIN_LAYERS = (
    "atom_convs.2",
    "atom_convs.3",
    "bond_convs.2",
    "readout_norm",
    "readout",
    "long_range",
)
PRESSURE_STRAINS = (-0.04, -0.02, 0.0, 0.02, 0.04)  # V/V0 − 1
REFERENCE_MODULUS_GPA, MIN_MODULUS_GPA = 100.0, 30.0  # stress weights of the pressure copies
MLEARN_STRESS_KBAR_TO_GPA = -0.1  # mlearn's virial stress: kB, positive = compressive
logger = logging.getLogger("train_stiff")


def pressure_examples(records: list[dict], base: MLIPModel) -> list[LabelledStructure]:
    """Strained copies of the usable cubic records with the DFT Birch–Murnaghan pressure change.

    The label is P_DFT(V) + P_base(V0): the DFT curve shifted to the base model's own pressure at
    the DFT volume, so that only the slope of P(V) (the bulk modulus) is fitted. Fitting the
    absolute pressure instead mostly fits each material's volume mismatch, which the fine-tune
    reduced by flattening every E(V) (a softer model in the pilots).
    """
    examples = []
    for record, structure in cubic_records(records):
        v0 = structure.volume
        state = BatchedState.from_structures([structure], device=base.device, dtype=base.dtype)
        offset = -float(torch.diagonal(base.compute(state, forces=False)["stress_ev_per_a3"][0]).mean())
        # Pressure errors grow with K; weighting by 1/K² makes every material's relative error count alike.
        weight = (REFERENCE_MODULUS_GPA / max(record["bulk_modulus_vrh"], MIN_MODULUS_GPA)) ** 2
        for strain in PRESSURE_STRAINS:
            copy = scaled(structure, strain)
            pressure = birch_murnaghan_pressure_gpa(copy.volume, v0, record["bulk_modulus_vrh"])
            stress = -(pressure / EV_PER_A3_IN_GPA + offset) * np.eye(3)  # ASE sign: compression < 0
            forces = np.zeros((len(copy), 3)) if strain == 0 else None
            examples.append(LabelledStructure(copy, None, forces, stress, weight=weight))
    return examples


def mp20_labelled(split: str, n: int, seed: int) -> list[LabelledStructure]:
    """MP-20 DFT minima: total energy and zero forces (no stress label, see pressure_examples)."""
    return [
        LabelledStructure(e.structure, e.energy, np.zeros((len(e.structure), 3)))
        for e in rd.mp20_examples(split, n, seed=seed)
    ]


def mlearn_labelled(per_element: int, seed: int) -> list[LabelledStructure]:
    """mlearn training frames (forces, stress; their energies are on another DFT scale)."""
    examples = []
    for element in rd.MLEARN_TRAIN:
        records = rd.mlearn_records(element, "training")
        picked = np.random.default_rng(seed).permutation(len(records))[:per_element]
        for k in sorted(picked):
            stress_gpa = records[k]["stress"] * MLEARN_STRESS_KBAR_TO_GPA
            stress = voigt_6_to_full_3x3_stress(stress_gpa) / EV_PER_A3_IN_GPA
            examples.append(LabelledStructure(records[k]["structure"], None, records[k]["forces"], stress))
    return examples


def frames_labelled() -> list[LabelledStructure]:
    """MPtrj frames (MP-compatible energy, forces, stress) and HfO2 frames (forces, stress)."""

    def labelled(atoms, energy: float | None) -> LabelledStructure:
        structure = AseAtomsAdaptor.get_structure(atoms)
        return LabelledStructure(structure, energy, atoms.get_forces(), atoms.get_stress(voigt=False))

    return [labelled(atoms, energy) for atoms, energy in rd.mptrj_frames()] + [
        labelled(atoms, None) for atoms in rd.hfo2_frames()
    ]


def cubic_records(records: list[dict]) -> list[tuple[dict, Structure]]:
    """The usable records of cubic crystals, with their structures."""
    usable = [(r, Structure.from_dict(r["structure"])) for r in records if rd.usable_elastic(r)]
    return [(record, structure) for record, structure in usable if rd.is_cubic(structure)]


def scaled(structure: Structure, volume_strain: float) -> Structure:
    """A copy at V0 (1 + volume_strain), positions scaled with the cell."""
    copy = structure.copy()
    copy.scale_lattice(structure.volume * (1 + volume_strain))
    return copy


def bulk_moduli_from_stress(model: MLIPModel, records: list[dict], strain: float = 0.02) -> np.ndarray:
    """[n, 2] (model, DFT) bulk moduli in GPa of the usable cubic records: −ΔP / (ΔV/V0) between
    the copies at V0 (1 ± strain), from the model's stress and from the DFT Birch–Murnaghan P(V)."""
    rows = []
    for record, structure in cubic_records(records):
        v0 = structure.volume
        copies = [scaled(structure, -strain), scaled(structure, strain)]
        state = BatchedState.from_structures(copies, device=model.device, dtype=model.dtype)
        stress = model.compute(state, forces=False, stress=True)["stress_ev_per_a3"].double()
        pressure = -torch.diagonal(stress, dim1=1, dim2=2).mean(dim=1).numpy() * EV_PER_A3_IN_GPA
        dft = [birch_murnaghan_pressure_gpa(c.volume, v0, record["bulk_modulus_vrh"]) for c in copies]
        rows.append(((pressure[0] - pressure[1]) / (2 * strain), (dft[0] - dft[1]) / (2 * strain)))
    return np.array(rows)


def validation_metrics(model: MLIPModel, mp20_val: list, elastic_val: list[dict]) -> dict[str, float]:
    moduli = bulk_moduli_from_stress(model, elastic_val)
    error = moduli[:, 0] - moduli[:, 1]
    return {
        "val_mp20_energy_mae_ev_per_atom": evaluate(model, mp20_val)["energy_mae_ev_per_atom"],
        "val_bulk_modulus_mae_gpa": float(np.abs(error).mean()),
        "val_bulk_modulus_mean_signed_gpa": float(error.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/stiff"))
    parser.add_argument("--n-mp20", type=int, default=2000)
    parser.add_argument("--n-mp20-val", type=int, default=300)
    parser.add_argument("--mlearn-per-element", type=int, default=50)
    parser.add_argument("--n-elastic", type=int, default=None, help="cap on training elastic binaries")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--force-weight", type=float, default=1.0)
    parser.add_argument("--stress-weight", type=float, default=0.1)
    parser.add_argument("--no-les", action="store_true", help="no Latent Ewald head")
    parser.add_argument("--layers", nargs="+", default=list(TRAIN_LAYERS), help="modules to train")
    parser.add_argument("--seed", type=int, default=rd.SEED)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    model = load_model("default", device="cpu", dtype=torch.float32)
    layers = tuple(args.layers)
    if args.no_les:
        layers = tuple(layer for layer in layers if layer != "long_range")
    else:
        attach_long_range_head(model, "les", sigma=1.0, dl=2.0)
    split = rd.elastic_split(rd.elastic_records(), seed=args.seed)
    train = (
        mp20_labelled("train", args.n_mp20, args.seed)
        + pressure_examples(split["train"][: args.n_elastic], model)
        + mlearn_labelled(args.mlearn_per_element, args.seed)
        + frames_labelled()
    )
    mp20_val = mp20_labelled("val", args.n_mp20_val, args.seed)
    logger.info("training examples: %d (%.0f s to prepare)", len(train), time.perf_counter() - started)

    settings = FinetuneSettings(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=16,
        train_layers=layers,
        energy_weight=args.energy_weight,
        force_weight=args.force_weight,
        stress_weight=args.stress_weight,
        refit_atom_ref=False,
        seed=args.seed,
    )
    history = [{"epoch": 0.0} | validation_metrics(model, mp20_val, split["validation"])]
    logger.info("before training: %s", history[0])
    summary = {
        "model": MODEL_NAME,
        "command": "python -m training.train_stiff " + " ".join(sys.argv[1:]),
        "train_layers": layers,
        "n_train": len(train),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": 1},
        "history": history,
    }

    def on_epoch(record: dict[str, float]) -> None:
        epoch = int(record["epoch"])
        model.info = ModelInfo(
            name=MODEL_NAME,
            source=f"CHGNet 0.3.0 fine-tuned by training/train_stiff.py (seed {args.seed}, epoch {epoch})",
        )
        model.save(args.out / f"epoch{epoch}.pt")
        record = record | validation_metrics(model, mp20_val, split["validation"])
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        logger.info("epoch %d: %s", epoch, record)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    finetune(model, train, settings, on_epoch=on_epoch)
    summary["total_seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
