"""Convert the published SevenNet checkpoints (inside the ``sevenn`` wheel, MIT) into our model files.

    pip install sevenn==0.13.0
    python scripts/convert_sevennet.py --out matsearch/mlip/models

For each model it builds the checkpoint with sevenn (which applies sevenn's own backward-
compatibility fixes to old checkpoints), copies every weight into a ``NequipModel`` by name,
checks energies, forces and stresses against sevenn's ASE calculator on a few crystals, and
writes ``<name>.pt`` (float32 weights only: no optimiser state). The mapping, sevenn -> ours
(t = block index):

    edge_embedding.basis_function.coeffs        radial_embedding.frequencies
    onehot_to_feature_x.linear.weight           embedding.weight
    t_self_connection_intro.linear.weight       blocks.t.self_connection.weight
    t_self_interaction_1.linear.weight          blocks.t.linear_in.weight
    t_convolution.weight_nn.layer{k}.weight     blocks.t.radial.layer{k}.weight
    t_convolution.denominator                   blocks.t.denominator
    t_self_interaction_2.linear.weight          blocks.t.linear_out.weight
    reduce_input_to_hidden.linear.weight        readout_hidden.weight
    reduce_hidden_to_energy.linear.weight       readout.weight
    rescale_atomic_energy.shift[(fidelity,) i]  atom_ref[Z_i - 1]
    rescale_atomic_energy.scale[i]              species_scale[Z_i - 1]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.mlip.backbones.nequip.model import NequipConfig, NequipModel
from matsearch.mlip.model import ModelInfo

logger = logging.getLogger("convert_sevennet")

# our name -> (sevenn checkpoint constant, fidelity for multi-fidelity checkpoints)
MODELS = {
    "sevennet-0": ("SEVENNET_0_11Jul2024", None),
    "sevennet-l3i5": ("SEVENNET_l3i5", None),
    "sevennet-mf-0": ("SEVENNET_MF_0", "PBE"),
}
SOURCES = {
    "sevennet-0": "SevenNet-0 (11Jul2024), sevenn 0.13.0, MIT; trained on MPtrj (raw PBE/PBE+U)",
    "sevennet-l3i5": "SevenNet-l3i5, sevenn 0.13.0, MIT; trained on MPtrj (raw PBE/PBE+U)",
    "sevennet-mf-0": "SevenNet-MF-0 PBE fidelity, sevenn 0.13.0, MIT; MPtrj + MP r2SCAN multi-fidelity",
}


def convert(name: str) -> tuple[NequipModel, object]:
    """Our model with the weights of sevenn's checkpoint `name`, and the sevenn model itself."""
    import sevenn._const as sevenn_const
    import sevenn.util as sevenn_util

    constant, fidelity = MODELS[name]
    checkpoint = sevenn_util.load_checkpoint(getattr(sevenn_const, constant))
    reference = checkpoint.build_model()
    config = checkpoint.config
    if config.get("self_connection_type") != "linear" or config.get("interaction_type") != "nequip":
        raise ValueError(f"{name}: only SevenNet's 'linear' self-connection NequIP models convert")
    if config.get("use_bias_in_linear") or config.get("readout_as_fcn"):
        raise ValueError(f"{name}: linear biases and FCN readouts are not supported")
    theirs = reference.state_dict()
    type_map: dict[int, int] = config["_type_map"]
    species = tuple(sorted(type_map, key=type_map.get))
    n_blocks = config["num_convolution_layer"]
    cutoff_function = config["cutoff_function"]
    fidelity_onehot: tuple[float, ...] = ()
    fidelity_index = None
    if config.get("use_modality"):
        modal_map: dict[str, int] = config["_modal_map"]
        fidelity_index = modal_map[fidelity]
        fidelity_onehot = tuple(float(k == fidelity_index) for k in range(len(modal_map)))
        wanted = {"use_modal_node_embedding": False, "use_modal_self_inter_intro": True}
        wanted |= {"use_modal_self_inter_outro": True, "use_modal_output_block": True}
        if any(config.get(key) != value for key, value in wanted.items()):
            raise ValueError(f"{name}: only fidelity inputs to the block linears and the readout convert")
    ours_config = NequipConfig(
        irreps=tuple(config["irreps_manual"]),
        species=species,
        denominators=tuple(float(theirs[f"{t}_convolution.denominator"][0]) for t in range(n_blocks)),
        cutoff=float(config["cutoff"]),
        lmax_sh=int(config["lmax"]),
        sh_parity=-1 if config["is_parity"] else 1,
        num_basis=int(config["radial_basis"]["bessel_basis_num"]),
        envelope="xplor" if cutoff_function["cutoff_function_name"] == "XPLOR" else "polynomial",
        polynomial_p=int(cutoff_function.get("poly_cut_p_value", 6)),
        xplor_r_on=float(cutoff_function.get("cutoff_on", 4.5)),
        radial_hidden=tuple(config["weight_nn_hidden_neurons"]),
        readout_hidden=theirs["reduce_hidden_to_energy.linear.weight"].numel(),
        fidelity=fidelity_onehot,
    )
    model = NequipModel(ours_config, energy_convention="raw-pbe")
    state = model.state_dict()
    mapped = {
        "radial_embedding.frequencies": "edge_embedding.basis_function.coeffs",
        "embedding.weight": "onehot_to_feature_x.linear.weight",
        "readout_hidden.weight": "reduce_input_to_hidden.linear.weight",
        "readout.weight": "reduce_hidden_to_energy.linear.weight",
    }
    for t in range(n_blocks):
        mapped[f"blocks.{t}.self_connection.weight"] = f"{t}_self_connection_intro.linear.weight"
        mapped[f"blocks.{t}.linear_in.weight"] = f"{t}_self_interaction_1.linear.weight"
        mapped[f"blocks.{t}.linear_out.weight"] = f"{t}_self_interaction_2.linear.weight"
        for k in range(len(ours_config.radial_hidden) + 1):
            mapped[f"blocks.{t}.radial.layer{k}.weight"] = f"{t}_convolution.weight_nn.layer{k}.weight"
    for ours, key in mapped.items():
        if state[ours].shape != theirs[key].shape:
            raise ValueError(f"{name}: {ours} {tuple(state[ours].shape)} vs {key} {tuple(theirs[key].shape)}")
        state[ours] = theirs[key].clone()
    for t in range(n_blocks):
        state[f"blocks.{t}.denominator"] = theirs[f"{t}_convolution.denominator"][0].clone()
    shift = theirs["rescale_atomic_energy.shift"]
    if shift.ndim == 2:
        shift = shift[fidelity_index]
    scale = theirs["rescale_atomic_energy.scale"]
    if scale.ndim == 2:
        scale = scale[fidelity_index]
    index = torch.tensor(species) - 1
    state["atom_ref"] = torch.zeros_like(state["atom_ref"]).index_copy(0, index, shift.float())
    state["species_scale"] = torch.ones_like(state["species_scale"]).index_copy(0, index, scale.float())
    model.load_state_dict(state)
    model.info = ModelInfo(name=name, source=SOURCES[name])
    return model.eval(), fidelity


def check(model: NequipModel, name: str, fidelity: str | None) -> dict[str, float]:
    """Worst differences from sevenn's ASE calculator on a few perturbed crystals."""
    from sevenn.calculator import SevenNetCalculator

    constant, _ = MODELS[name]
    import sevenn._const as sevenn_const

    calculator = SevenNetCalculator(getattr(sevenn_const, constant), device="cpu", modal=fidelity)
    crystals = [
        Structure(Lattice.cubic(5.64), ["Na", "Cl"] * 4, _rocksalt()),
        Structure(Lattice.hexagonal(3.25, 5.2), ["Zn", "Zn", "O", "O"], _wurtzite()),
        Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]),
    ]
    worst = {"energy_ev_per_atom": 0.0, "forces_ev_per_a": 0.0, "stress_gpa": 0.0}
    for seed, crystal in enumerate(crystals):
        crystal = crystal.copy().perturb(0.05, seed=seed)
        atoms = AseAtomsAdaptor.get_atoms(crystal)
        atoms.calc = calculator
        ours = model.predict([crystal])[0]
        worst["energy_ev_per_atom"] = max(
            worst["energy_ev_per_atom"], abs(ours["energy"] - atoms.get_potential_energy()) / len(crystal)
        )
        worst["forces_ev_per_a"] = max(
            worst["forces_ev_per_a"], float(np.abs(ours["forces"] - atoms.get_forces()).max())
        )
        theirs_gpa = atoms.get_stress(voigt=False) * 160.21766208
        worst["stress_gpa"] = max(worst["stress_gpa"], float(np.abs(ours["stress"] - theirs_gpa).max()))
    return worst


def _rocksalt() -> list[list[float]]:
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return [site for a in fcc for site in (a, [(a[0] + 0.5) % 1, a[1], a[2]])]


def _wurtzite() -> list[list[float]]:
    return [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375], [2 / 3, 1 / 3, 0.875]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("matsearch/mlip/models"))
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="default: all")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    for name in args.model or sorted(MODELS):
        model, fidelity = convert(name)
        worst = check(model, name, fidelity)
        logger.info("%s: worst difference from sevenn %s", name, worst)
        if (
            worst["energy_ev_per_atom"] > 1e-5
            or worst["forces_ev_per_a"] > 1e-4
            or worst["stress_gpa"] > 1e-3
        ):
            raise SystemExit(f"{name}: converted model disagrees with sevenn: {worst}")
        path = model.save(args.out / f"{name}.pt")
        logger.info("wrote %s (%.1f MB, %d weights)", path, path.stat().st_size / 1e6, model.n_params)


if __name__ == "__main__":
    main()
