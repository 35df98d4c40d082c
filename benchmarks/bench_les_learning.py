"""Can a long-range head learn Coulomb energy that the CHGNet readout cannot? (held-out energy MAE)

Data: dilute ionic cells, 2-4 Na+/Cl- pairs at random in cubic boxes of 12-16 Å (ions ≥ 3.2 Å
apart), labelled with pymatgen's Ewald energy of ±1 point charges plus a Born-Mayer repulsion
(1000 eV · exp(−r / 0.3 Å)). Most ion pairs are beyond the 6 Å graph cutoff with no atoms between
them, so a local model cannot see them. Starting from the pretrained ``default`` model, each
variant is fine-tuned on energies with the same budget (full batch, Adam, cosine decay, 1000
epochs):

- ``readout``: the readout MLP only;
- ``les``: readout + Latent Ewald head;
- ``qeq`` (opt-in with ``--variants``): readout + charge-equilibration head; needs the model to
  pass ``atomic_numbers`` to its long-range head.

Writes benchmarks/results/les_learning.json and prints a markdown table (eV/atom).

    python benchmarks/bench_les_learning.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

from matsearch.finetune_settings import FinetuneSettings
from matsearch.mlip import load_model
from matsearch.mlip.heads import attach_long_range_head
from matsearch.mlip.heads.qeq import ChargeEquilibrationHead
from matsearch.mlip.training.finetune import (
    LabelledStructure,
    evaluate,
    finetune,
)

RESULTS = Path(__file__).parent / "results" / "les_learning.json"


def dilute_ionic_cell(rng: np.random.Generator) -> LabelledStructure:
    """One labelled cell (see module docstring)."""
    lattice = Lattice.cubic(rng.uniform(12, 16))
    n_pairs = int(rng.integers(2, 5))
    frac: list[np.ndarray] = []
    while len(frac) < 2 * n_pairs:
        trial = rng.uniform(0, 1, 3)
        if all(lattice.get_distance_and_image(trial, f)[0] >= 3.2 for f in frac):
            frac.append(trial)
    structure = Structure(lattice, ["Na", "Cl"] * n_pairs, frac)
    charged = structure.copy()
    charged.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    _, _, _, distances = structure.get_neighbor_list(4.0)
    repulsion = 0.5 * np.sum(1000.0 * np.exp(-distances / 0.3))
    return LabelledStructure(structure, float(EwaldSummation(charged).total_energy + repulsion))


def run_variant(base, variant: str, train, test, epochs: int, lr: float) -> dict[str, float]:
    model = copy.deepcopy(base)
    layers: tuple[str, ...] = ("readout",)
    if variant == "les":
        attach_long_range_head(model, "les")
        layers = ("readout", "long_range")
    elif variant == "qeq":
        model.long_range = ChargeEquilibrationHead(model.feature_dim).to(model.device, model.dtype)
        layers = ("readout", "long_range")
    settings = FinetuneSettings(
        epochs=epochs,
        lr=lr,
        batch_size=len(train),
        train_layers=layers,
        force_weight=0,
        stress_weight=0,
    )
    start = time.perf_counter()
    result = finetune(model, train, settings)
    return {
        "train_mae_ev_per_atom": result.final_train["energy_mae_ev_per_atom"],
        "test_mae_ev_per_atom": evaluate(model, test, 64)["energy_mae_ev_per_atom"],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=80)
    parser.add_argument("--n-test", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--variants", nargs="+", default=["readout", "les"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model("default", device="cpu")
    rows = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        data = [dilute_ionic_cell(rng) for _ in range(args.n_train + args.n_test)]
        train, test = data[: args.n_train], data[args.n_train :]
        for variant in args.variants:
            row = {"seed": seed, "variant": variant}
            row.update(run_variant(base, variant, train, test, args.epochs, args.lr))
            rows.append(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "args": vars(args),
        "torch": torch.__version__,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
    }
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("| seed | variant | train MAE | test MAE | s |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['seed']} | {row['variant']} | {row['train_mae_ev_per_atom']:.4f} | "
            f"{row['test_mae_ev_per_atom']:.4f} | {row['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
