"""Parity of our MLIP with the reference `chgnet` package on MP-20 test structures.

Reference: chgnet's own ``CHGNet.load(...).predict_structure`` (energy 'e' in eV/atom, forces 'f'
eV/Å, stress 's' GPa, magmoms 'm' μB). Tolerances: energy 1e-4 eV/atom, forces 1e-3 eV/Å, stress
1e-2 GPa in float32; 1e-6 eV/atom (and 1e-5 eV/Å, 1e-4 GPa) in float64 against chgnet run in
float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mp20_sample import mp20_test_structures
from pymatgen.core import Structure

from matsearch.errors import ModelError
from matsearch.mlip import load_model, model_names

N_PARITY = 200  # full float32 parity set (slow test; also run by benchmarks/bench_mlip_single_point.py)
N_QUICK = 50  # parity set of the default run


@pytest.fixture(scope="module")
def structures(mirror_dir: Path) -> list[Structure]:
    return mp20_test_structures(mirror_dir, N_PARITY)


def chgnet_reference(structures: list[Structure], model_name: str) -> list[dict]:
    """chgnet's predictions, one predict_structure call per structure (float32)."""
    from chgnet.model import CHGNet

    reference = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
    return [reference.predict_structure(s, task="efsm") for s in structures]


def chgnet_reference_float64(structures: list[Structure]) -> list[dict]:
    """chgnet 0.3.0 in float64: weights cast, graphs given float64 coordinates and lattices."""
    from chgnet.model import CHGNet

    reference = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False).double()
    # chgnet casts composition fractions to float32; its AtomRef term (~1e-7 eV/atom rounding)
    # therefore stays float32.
    reference.composition_model.float()
    graphs = []
    for structure in structures:
        graph = reference.graph_converter(structure)
        graph.atom_frac_coord = torch.tensor(structure.frac_coords, dtype=torch.float64, requires_grad=True)
        graph.lattice = torch.tensor(structure.lattice.matrix, dtype=torch.float64)
        graph.neighbor_image = graph.neighbor_image.double()
        graphs.append(graph)
    predictions = reference.predict_graph(graphs, task="efsm", batch_size=16)
    return predictions if isinstance(predictions, list) else [predictions]


def max_deviations(ours: list[dict], reference: list[dict], structures: list[Structure]) -> dict:
    """Worst |ours - chgnet| per quantity, in chgnet's units."""
    return {
        "energy_ev_per_atom": max(
            abs(o["energy"] / len(s) - float(r["e"]))
            for o, r, s in zip(ours, reference, structures, strict=True)
        ),
        "forces_ev_per_a": max(
            float(np.abs(o["forces"] - r["f"]).max()) for o, r in zip(ours, reference, strict=True)
        ),
        "stress_gpa": max(
            float(np.abs(o["stress"] - r["s"]).max()) for o, r in zip(ours, reference, strict=True)
        ),
        "magmoms_mu_b": max(
            float(np.abs(o["magmoms"] - r["m"]).max()) for o, r in zip(ours, reference, strict=True)
        ),
    }


def assert_float32_parity(structures: list[Structure]) -> None:
    ours = load_model("chgnet-0.3.0", device="cpu").predict(structures, batch_size=64)
    worst = max_deviations(ours, chgnet_reference(structures, "0.3.0"), structures)
    assert worst["energy_ev_per_atom"] < 1e-4, worst
    assert worst["forces_ev_per_a"] < 1e-3, worst
    assert worst["stress_gpa"] < 1e-2, worst
    assert worst["magmoms_mu_b"] < 1e-3, worst


def test_parity_with_chgnet_float32(structures: list[Structure]) -> None:
    assert_float32_parity(structures[:N_QUICK])


@pytest.mark.slow
def test_parity_with_chgnet_float32_full(structures: list[Structure]) -> None:
    assert_float32_parity(structures)


def test_parity_with_chgnet_float64(structures: list[Structure]) -> None:
    subset = structures[:12]
    ours = load_model("chgnet-0.3.0", device="cpu", dtype=torch.float64).predict(subset, batch_size=20)
    worst = max_deviations(ours, chgnet_reference_float64(subset), subset)
    assert worst["energy_ev_per_atom"] < 1e-6, worst
    assert worst["forces_ev_per_a"] < 1e-5, worst
    assert worst["stress_gpa"] < 1e-4, worst
    assert worst["magmoms_mu_b"] < 1e-6, worst


def test_parity_with_chgnet_r2scan(structures: list[Structure]) -> None:
    subset = structures[:20]
    ours = load_model("chgnet-r2scan", device="cpu").predict(subset)
    worst = max_deviations(ours, chgnet_reference(subset, "r2scan"), subset)
    assert worst["energy_ev_per_atom"] < 1e-4, worst
    assert worst["forces_ev_per_a"] < 1e-3, worst
    assert worst["stress_gpa"] < 1e-2, worst
    # The two weight sets really differ, so the check above is not vacuous.
    default = load_model("chgnet-0.3.0", device="cpu").predict(subset[:1])
    assert abs(default[0]["energy"] - ours[0]["energy"]) > 1e-2


def test_saved_model_file_round_trip(structures: list[Structure], tmp_path: Path) -> None:
    model = load_model("chgnet-r2scan", device="cpu")
    path = model.save(tmp_path / "r2scan.pt")
    reloaded = load_model(str(path), device="cpu")
    assert reloaded.config == model.config
    assert reloaded.info.name == "chgnet-r2scan"
    before, after = model.predict(structures[:3]), reloaded.predict(structures[:3])
    for b, a in zip(before, after, strict=True):
        assert a["energy"] == b["energy"]
        np.testing.assert_array_equal(a["forces"], b["forces"])


def test_unknown_model_name_lists_valid_names() -> None:
    names = ["default", "chgnet-0.3.0", "chgnet-r2scan", "chgnet-les-ft1", "sevennet-0", "sevennet-l3i5"]
    with pytest.raises(ModelError, match="unknown model 'chgnet-9'; use one of " + ", ".join(names)):
        load_model("chgnet-9")
    assert model_names() == [*names, "sevennet-mf-0"]


def test_file_that_is_not_a_model_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModelError, match="not a matsearch model file"):
        load_model(str(path))
