"""Does the two-model disagreement (matsearch.uncertainty) predict the MLIP's error? WBM dev set.

Static energies of the DFT-relaxed WBM dev structures (measurement only) from the scoring model
(sevennet-0, the default) and the second model (chgnet-0.3.0), both on the MP2020 scale and on the
``mp20-subset`` hull with the MP 2023-02-07 elemental references, as ``matsearch uncertainty``
does. Disagreement |Δe_hull| = |e_hull(sevennet-0) − e_hull(chgnet-0.3.0)|; error = |e_hull
(sevennet-0) − e_hull(DFT)| (eV/atom). Reports the Spearman correlation of the two, the MAE of the
top-disagreement decile against the overall MAE, and per disagreement quintile.

    OMP_NUM_THREADS=1 python benchmarks/bench_uncertainty.py            # all 9,941
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_default_model import ROOT, energies_per_atom, mp2020_corrections, on_hull_scale  # noqa: E402

from matsearch.mlip import load_model  # noqa: E402
from matsearch.scoring.hull import HullReference  # noqa: E402
from training import recipe_data as rd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "uncertainty.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=None, help="WBM rows (seeded draw); default all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = rd.wbm_rows(args.n)
    structures = [Structure.from_str(cif, fmt="cif") for cif in rows["cif"]]
    hull = HullReference.from_registry("mp20-subset")
    dft_form = rows["formation_energy_per_atom"].to_numpy(float)
    compositions = [s.composition for s in structures]
    refs = np.array([hull.formation_energy_per_atom(c, 0.0) for c in compositions])  # −Σ x_i μ_i
    corrections = mp2020_corrections(structures)
    formation = {}
    for name in ("sevennet-0", "chgnet-0.3.0"):
        model = load_model(name, device="cpu")
        formation[name] = on_hull_scale(model, energies_per_atom(model, structures), corrections) + refs
        print(f"{name}: {time.time() - started:.0f} s", flush=True)
    # same composition, same hull energy: e_hull differences are formation-energy differences
    spread = np.abs(formation["sevennet-0"] - formation["chgnet-0.3.0"])
    error = np.abs(formation["sevennet-0"] - dft_form)
    rho, p_value = spearmanr(spread, error)
    order = np.argsort(-spread)
    decile = order[: max(1, len(order) // 10)]
    quintiles = np.array_split(np.argsort(spread), 5)
    result = {
        "n": len(structures),
        "spearman_disagreement_vs_error": float(rho),
        "spearman_p_value": float(p_value),
        "mae_ev_per_atom": float(error.mean()),
        "top_decile_mae_ev_per_atom": float(error[decile].mean()),
        "top_decile_ratio": float(error[decile].mean() / error.mean()),
        "quintile_mae_ev_per_atom": [float(error[q].mean()) for q in quintiles],
        "quintile_mean_disagreement_ev_per_atom": [float(spread[q].mean()) for q in quintiles],
        "date": "2026-12-06",
        "machine": "2 shared CPU cores, 1 torch thread",
        "seconds": time.time() - started,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
