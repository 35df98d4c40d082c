"""Published CHGNet checkpoints (inside the ``chgnet`` wheel, under ``chgnet/pretrained/``) as our model.

- ``chgnet-0.3.0``: CHGNet 0.3.0, trained on MPtrj (PBE/PBE+U, MP2020-corrected energies).
- ``chgnet-r2scan``: CHGNet transfer-learned to MP r2SCAN.

Key mapping from a CHGNet state dict to ours (k = block index; W[:, a:b] = input columns a..b-1;
"core" and "gate" are ``mlp_core`` and ``mlp_gate`` of a CHGNet GatedMLP; cat = stack rows):

===========================================  ==================================================
ours                                         CHGNet
===========================================  ==================================================
atom_ref                                     composition_model.fc.weight[0]
atom_embedding.weight                        atom_embedding.embedding.weight
radial_atom.frequencies                      bond_basis_expansion.rbf_expansion_ag.frequencies
radial_bond.frequencies                      bond_basis_expansion.rbf_expansion_bg.frequencies
angle_basis.frequencies                      angle_basis_expansion.fourier_expansion.frequencies
bond_embedding / angle_embedding .weight     same names
bond_weights_atom.weight                     bond_weights_ag.weight
bond_weights_bond.weight                     bond_weights_bg.weight
atom_convs.k.atom_proj.weight                cat(core W[:, 0:A], gate W[:, 0:A],
                                             core W[:, A+B:], gate W[:, A+B:])  (centre, neighbour)
atom_convs.k.bond_proj.weight / .bias        cat(core W[:, A:A+B], gate W[:, A:A+B]) / cat(biases)
   (W, biases: atom_conv_layers.k.twoBody_atom.mlp_{core,gate}.layers.0)
atom_convs.k.gated.{core,gate}_linear        atom_conv_layers.k.twoBody_atom
                                             .mlp_{core,gate}.layers.3
atom_convs.k.gated.{core,gate}_norm          atom_conv_layers.k.twoBody_atom.bn{1,2}
atom_convs.k.out.weight                      atom_conv_layers.k.mlp_out.layers.1.weight
bond_convs.k.gather.bond_proj.weight         cat(core W[:, 0:B], gate W[:, 0:B], core W[:, B:2B],
                                             gate W[:, B:2B])  (first bond, second bond)
bond_convs.k.gather.angle_proj.weight/.bias  cat(core W[:, 2B:2B+G], gate W[:, 2B:2B+G]),
                                             cat(biases)
bond_convs.k.gather.atom_proj.weight         cat(core W[:, 2B+G:], gate W[:, 2B+G:])
   (W, biases: bond_conv_layers.k.twoBody_bond.mlp_{core,gate}.layers.0)
bond_convs.k.gated.*, bond_convs.k.out       as for atom_convs, with the prefix
                                             bond_conv_layers.k.twoBody_bond
angle_updates.k.gather.*                     as bond_convs.k.gather, from
                                             angle_layers.k.twoBody_bond.mlp_{core,gate}.layers.1
angle_updates.k.gated.{core,gate}_norm       angle_layers.k.twoBody_bond.bn{1,2}
   (k < n_conv − 2 only: angle_layers.{n_conv − 2} feeds nothing and is skipped)
magmom_head                                  site_wise
readout_norm                                 readout_norm
readout.{0,2,4,6}                            mlp.layers.{0,2,4,7}
===========================================  ==================================================
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from matsearch.errors import ModelError
from matsearch.mlip.backbones.chgnet.model import ChgnetConfig, ChgnetModel
from matsearch.mlip.model import ModelInfo
from matsearch.model_names import PRETRAINED


def chgnet_checkpoint_path(name: str) -> Path:
    """Path of a pretrained CHGNet checkpoint inside the installed ``chgnet`` package."""
    spec = importlib.util.find_spec("chgnet")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model {name!r} needs the chgnet package for its published weights; "
            "install it with `pip install chgnet`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PRETRAINED[name]
    if not path.is_file():
        raise ModelError(f"the chgnet package has no checkpoint for {name!r} at {path}")
    return path


# CHGNet model_args that our architecture reproduces; any other value cannot be converted.
_REQUIRED_CHGNET_ARGS: dict[str, Any] = {
    "mlp_first": True,
    "is_intensive": True,
    "update_bond": True,
    "update_angle": True,
    "angle_layer_hidden_dim": 0,
    "non_linearity": "silu",
    "gMLP_norm": "layer",
    "readout_norm": "layer",
    "learnable_rbf": True,
}


def _config_from_chgnet(args: dict[str, Any]) -> ChgnetConfig:
    for key, wanted in _REQUIRED_CHGNET_ARGS.items():
        if key in args and args[key] != wanted:
            raise ModelError(f"CHGNet checkpoint has {key}={args[key]!r}; only {key}={wanted!r} is supported")
    if args.get("mlp_out_bias", False):
        raise ModelError("CHGNet checkpoints with mlp_out_bias=True (version 0.2.0) are not supported")
    hidden = {args.get("atom_conv_hidden_dim", 64), args.get("bond_conv_hidden_dim", 64)}
    if len(hidden) != 1 or not all(isinstance(h, int) for h in hidden):
        raise ModelError(f"CHGNet checkpoint has unsupported convolution hidden sizes {hidden}")
    return ChgnetConfig(
        atom_dim=args.get("atom_fea_dim", 64),
        bond_dim=args.get("bond_fea_dim", 64),
        angle_dim=args.get("angle_fea_dim", 64),
        num_radial=args.get("num_radial", 31),
        num_angular=args.get("num_angular", 31),
        n_conv=args.get("n_conv", 4),
        conv_hidden_dim=hidden.pop(),
        readout_hidden_dims=tuple(args.get("mlp_hidden_dims", (64, 64, 64))),
        atom_cutoff=float(args.get("atom_graph_cutoff", 6)),
        bond_cutoff=float(args.get("bond_graph_cutoff", 3)),
        envelope_exponent=int(args.get("cutoff_coeff", 8)),
    )


class _Reader:
    """Reads CHGNet tensors by name and remembers which were used."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.state_dict = state_dict
        self.used: set[str] = set()

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.state_dict:
            raise ModelError(f"CHGNet checkpoint lacks the weight {key!r}")
        self.used.add(key)
        return self.state_dict[key]

    def skip(self, prefix: str) -> None:
        """Count every weight under `prefix` as handled without converting it."""
        self.used.update(key for key in self.state_dict if key.startswith(prefix))

    def stacked_columns(self, prefix: str, layer: int, *column_ranges: tuple[int, int]) -> torch.Tensor:
        """cat over column ranges of [core W[:, range], gate W[:, range]] of a GatedMLP layer."""
        core = self(f"{prefix}.mlp_core.layers.{layer}.weight")
        gate = self(f"{prefix}.mlp_gate.layers.{layer}.weight")
        return torch.cat([w[:, lo:hi] for lo, hi in column_ranges for w in (core, gate)])

    def stacked_bias(self, prefix: str, layer: int) -> torch.Tensor:
        return torch.cat(
            [
                self(f"{prefix}.mlp_core.layers.{layer}.bias"),
                self(f"{prefix}.mlp_gate.layers.{layer}.bias"),
            ]
        )


def _copy_linear(
    out: dict[str, torch.Tensor], ours: str, read: _Reader, theirs: str, bias: bool = True
) -> None:
    out[f"{ours}.weight"] = read(f"{theirs}.weight")
    if bias:
        out[f"{ours}.bias"] = read(f"{theirs}.bias")


def _gated_tail(
    out: dict[str, torch.Tensor], ours: str, read: _Reader, prefix: str, layer: int | None
) -> None:
    if layer is not None:
        _copy_linear(out, f"{ours}.core_linear", read, f"{prefix}.mlp_core.layers.{layer}")
        _copy_linear(out, f"{ours}.gate_linear", read, f"{prefix}.mlp_gate.layers.{layer}")
    _copy_linear(out, f"{ours}.core_norm", read, f"{prefix}.bn1")
    _copy_linear(out, f"{ours}.gate_norm", read, f"{prefix}.bn2")


def _angle_gather(
    out: dict[str, torch.Tensor],
    ours: str,
    read: _Reader,
    prefix: str,
    layer: int,
    config: ChgnetConfig,
) -> None:
    b, g = config.bond_dim, config.angle_dim
    out[f"{ours}.bond_proj.weight"] = read.stacked_columns(prefix, layer, (0, b), (b, 2 * b))
    out[f"{ours}.angle_proj.weight"] = read.stacked_columns(prefix, layer, (2 * b, 2 * b + g))
    out[f"{ours}.angle_proj.bias"] = read.stacked_bias(prefix, layer)
    out[f"{ours}.atom_proj.weight"] = read.stacked_columns(
        prefix, layer, (2 * b + g, 2 * b + g + config.atom_dim)
    )


def convert_chgnet_state_dict(
    state_dict: dict[str, torch.Tensor], config: ChgnetConfig
) -> dict[str, torch.Tensor]:
    """Our state dict from a CHGNet one (see the module docstring for the mapping)."""
    read = _Reader(state_dict)
    out: dict[str, torch.Tensor] = {"atom_ref": read("composition_model.fc.weight")[0]}
    out["atom_embedding.weight"] = read("atom_embedding.embedding.weight")
    out["radial_atom.frequencies"] = read("bond_basis_expansion.rbf_expansion_ag.frequencies")
    out["radial_bond.frequencies"] = read("bond_basis_expansion.rbf_expansion_bg.frequencies")
    out["angle_basis.frequencies"] = read("angle_basis_expansion.fourier_expansion.frequencies")
    for ours, theirs in (
        ("bond_embedding", "bond_embedding"),
        ("bond_weights_atom", "bond_weights_ag"),
        ("bond_weights_bond", "bond_weights_bg"),
        ("angle_embedding", "angle_embedding"),
    ):
        _copy_linear(out, ours, read, theirs, bias=False)

    a, b = config.atom_dim, config.bond_dim
    for k in range(config.n_conv):
        prefix = f"atom_conv_layers.{k}.twoBody_atom"
        out[f"atom_convs.{k}.atom_proj.weight"] = read.stacked_columns(prefix, 0, (0, a), (a + b, 2 * a + b))
        out[f"atom_convs.{k}.bond_proj.weight"] = read.stacked_columns(prefix, 0, (a, a + b))
        out[f"atom_convs.{k}.bond_proj.bias"] = read.stacked_bias(prefix, 0)
        _gated_tail(out, f"atom_convs.{k}.gated", read, prefix, 3)
        _copy_linear(out, f"atom_convs.{k}.out", read, f"atom_conv_layers.{k}.mlp_out.layers.1", bias=False)
    for k in range(config.n_conv - 1):
        prefix = f"bond_conv_layers.{k}.twoBody_bond"
        _angle_gather(out, f"bond_convs.{k}.gather", read, prefix, 0, config)
        _gated_tail(out, f"bond_convs.{k}.gated", read, prefix, 3)
        _copy_linear(out, f"bond_convs.{k}.out", read, f"bond_conv_layers.{k}.mlp_out.layers.1", bias=False)
        prefix = f"angle_layers.{k}.twoBody_bond"
        if k < config.n_conv - 2:
            _angle_gather(out, f"angle_updates.{k}.gather", read, prefix, 1, config)
            _gated_tail(out, f"angle_updates.{k}.gated", read, prefix, None)
        else:  # CHGNet's last angle layer feeds nothing (see MLIPModel); its weights are not used.
            read.skip(f"angle_layers.{k}.")

    _copy_linear(out, "magmom_head", read, "site_wise")
    _copy_linear(out, "readout_norm", read, "readout_norm")
    n_hidden = len(config.readout_hidden_dims)
    for n in range(n_hidden):  # CHGNet: Linear, SiLU per hidden layer, then Dropout, Linear.
        _copy_linear(out, f"readout.{2 * n}", read, f"mlp.layers.{2 * n}")
    _copy_linear(out, f"readout.{2 * n_hidden}", read, f"mlp.layers.{2 * n_hidden + 1}")

    unused = sorted(set(state_dict) - read.used)
    if unused:
        raise ModelError(f"CHGNet checkpoint has weights this architecture does not use: {unused[:5]}")
    return out


def load_chgnet_checkpoint(path: str | Path, name: str) -> ChgnetModel:
    """Build our model from a CHGNet checkpoint file (``CHGNet.save`` / the pretrained files)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    body = checkpoint.get("model", checkpoint)
    if "state_dict" not in body or "model_args" not in body:
        raise ModelError(f"{path} is not a CHGNet checkpoint (no state_dict and model_args)")
    config = _config_from_chgnet(body["model_args"])
    model = ChgnetModel(config)
    model.load_state_dict(convert_chgnet_state_dict(body["state_dict"], config))
    model.info = ModelInfo(name=name, source=str(path))
    return model
