"""Born effective charges of simple ionic solids from a model's Latent Ewald head vs published DFT.

Z*_{i,αβ} = ∂P_α/∂r_iβ by autograd through the latent charges (``les.born_effective_charges``),
at fixed experimental-like geometries (no relaxation). Reported per symmetry-distinct site: the
diagonal of Z* (xx, yy, zz, e) after imposing the acoustic sum rule (``les.impose_acoustic_sum_rule``),
and how far Σ_i Z*_i was from 0 before (the head makes every structure neutral, so only the
periodic charge-response term can break it, in polar cells).

Published DFT (DFPT) values, approximate, for comparison:
NaCl Na 1.11 (Petretto et al., Sci. Data 5, 180065 (2018), PBE); MgO Mg 1.96 (ibid.);
LiF Li 1.05 (ibid.); wurtzite ZnO Zn 2.1 (⊥) / 2.2 (∥) (ibid.; LDA values 2.06/2.12 in the
literature); cubic BaTiO3 Ba 2.77, Ti 7.25, O∥ −5.71, O⊥ −2.15 (Ghosez et al., PRB 58, 6224
(1998)); cubic PbTiO3 Pb 3.90, Ti 7.06, O∥ −5.83, O⊥ −2.56 (Zhong, King-Smith, Vanderbilt,
PRL 72, 3618 (1994)).

    python benchmarks/bench_born_charges.py --model chgnet-les-ft1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from matsearch.mlip import load_model
from matsearch.mlip.heads.les import born_effective_charges, impose_acoustic_sum_rule
from matsearch.mlip.state import BatchedState

RESULTS = Path(__file__).parent / "results" / "born_charges.json"

# site label -> published Z* (xx, yy, zz) in e; "∥"/"⊥" for O in perovskites along the Ti–O bond.
PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "NaCl": {"Na": (1.11, 1.11, 1.11), "Cl": (-1.11, -1.11, -1.11)},
    "MgO": {"Mg": (1.96, 1.96, 1.96), "O": (-1.96, -1.96, -1.96)},
    "LiF": {"Li": (1.05, 1.05, 1.05), "F": (-1.05, -1.05, -1.05)},
    "ZnO (wurtzite)": {"Zn": (2.1, 2.1, 2.2), "O": (-2.1, -2.1, -2.2)},
    "BaTiO3 (cubic)": {"Ba": (2.77, 2.77, 2.77), "Ti": (7.25, 7.25, 7.25), "O1": (-2.15, -2.15, -5.71)},
    "PbTiO3 (cubic)": {"Pb": (3.90, 3.90, 3.90), "Ti": (7.06, 7.06, 7.06), "O1": (-2.56, -2.56, -5.83)},
}


def structures() -> dict[str, Structure]:
    """The six test crystals (lattice constants in Å, close to experiment)."""
    rocksalt = [[0, 0, 0], [0.5, 0.5, 0.5]]

    def fcc(a: float, species: list[str]) -> Structure:
        return Structure(
            Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), species, rocksalt
        )

    def perovskite(a: float, a_site: str) -> Structure:
        # O1 sits at (0.5, 0.5, 0): its Ti–O bond is along z, so zz is the ∥ component.
        return Structure(
            Lattice.cubic(a),
            [a_site, "Ti", "O", "O", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        )

    u = 0.382
    wurtzite = Structure(
        Lattice.hexagonal(3.25, 5.207),
        ["Zn", "Zn", "O", "O"],
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]],
    )
    return {
        "NaCl": fcc(5.64, ["Na", "Cl"]),
        "MgO": fcc(4.21, ["Mg", "O"]),
        "LiF": fcc(4.03, ["Li", "F"]),
        "ZnO (wurtzite)": wurtzite,
        "BaTiO3 (cubic)": perovskite(4.00, "Ba"),
        "PbTiO3 (cubic)": perovskite(3.97, "Pb"),
    }


def born_charges(model, structure: Structure) -> tuple[np.ndarray, np.ndarray, float]:
    """Z* [n, 3, 3] (e) with the acoustic sum rule imposed, latent charges [n] (e), and the
    largest |Σ_i Z*_i| (e) before imposing it."""
    state = BatchedState.from_structures([structure], dtype=torch.float64)
    state.positions.requires_grad_(True)
    out = model.compute(state, forces=False, stress=False, create_graph=True)
    z = born_effective_charges(out["charges"], state.positions, state.cell, state.batch, state.pbc)
    violation = float(z.sum(dim=0).abs().max())
    z = impose_acoustic_sum_rule(z, state.batch, 1)
    return z.detach().numpy(), out["charges"].detach().numpy(), violation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="chgnet-les-ft1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu", dtype=torch.float64)
    if model.long_range is None:
        raise SystemExit(f"model {args.model} has no long-range head")
    report: dict = {"model": args.model, "crystals": {}}
    lines = [
        "| crystal | site | latent q (e) | Z* xx / yy / zz (model) | published DFT | |Σ Z*| before ASR (e) |",
        "|---|---|---|---|---|---|",
    ]
    for name, structure in structures().items():
        z, q, asr = born_charges(model, structure)
        sites = {}
        seen: set[str] = set()
        for i, site in enumerate(structure):
            label = site.specie.symbol
            if label == "O" and "TiO3" in name:
                label = "O1"
            if label in seen:
                continue
            seen.add(label)
            sites[label] = {"q": float(q[i]), "diag": np.diag(z[i]).tolist(), "tensor": z[i].tolist()}
            published = PUBLISHED[name].get(label)
            lines.append(
                f"| {name} | {label} | {q[i]:+.3f} | "
                + " / ".join(f"{v:+.2f}" for v in np.diag(z[i]))
                + f" | {' / '.join(f'{v:+.2f}' for v in published) if published else '—'} | {asr:.1e} |"
            )
        report["crystals"][name] = {"sites": sites, "acoustic_sum_rule_violation_before_imposing": asr}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
