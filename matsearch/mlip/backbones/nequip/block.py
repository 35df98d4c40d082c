"""One NequIP interaction block (Batzner et al., Nat. Commun. 2022) as SevenNet builds it.

x ← Gate( Linear_out( Σ_neighbours conv(Linear_in(x), Y, MLP(radial)) / denominator )
          + SelfConnection(x) )

The self-connection is a linear map of the block's input; the gate applies SiLU (even) or tanh
(odd) to scalars and multiplies each higher-degree channel by an activated scalar gate. With
``fidelity_dim`` > 0 a constant one-hot of the model's fidelity (e.g. PBE vs r2SCAN in a
multi-fidelity model) is appended to the scalar inputs of Linear_in and Linear_out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from matsearch.mlip.backbones.nequip.convolution import EdgeConvolution

ACTIVATIONS = {"silu": F.silu, "tanh": torch.tanh}


def gate_for(irreps_out: o3.Irreps, even: str = "silu", odd: str = "tanh") -> Gate:
    """e3nn Gate producing `irreps_out`: activated scalars, and gated l > 0 channels."""
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gate_parity = 1 if "0e" in scalars else -1
    gates = o3.Irreps([(mul, (0, gate_parity)) for mul, _ in gated])
    by_parity = {1: ACTIVATIONS[even], -1: ACTIVATIONS[odd]}
    return Gate(
        scalars,
        [by_parity[ir.p] for _, ir in scalars],
        gates,
        [by_parity[ir.p] for _, ir in gates],
        gated,
    )


class InteractionBlock(nn.Module):
    """Maps atom features of `irreps_in` to `irreps_out` with one round of messages."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_basis: int,
        radial_hidden: Sequence[int],
        denominator: float,
        fidelity_dim: int = 0,
    ) -> None:
        super().__init__()
        self.gate = gate_for(irreps_out)
        self.fidelity_dim = fidelity_dim
        fidelity = o3.Irreps(f"{fidelity_dim}x0e") if fidelity_dim else o3.Irreps("")
        # Couplings up to the output's degree; the last block keeps even scalars only.
        lmax = irreps_out.lmax
        keep = o3.Irreps([(1, (degree, p)) for degree in range(lmax + 1) for p in (1, -1)])
        if lmax == 0:
            keep = o3.Irreps("0e")
        self.self_connection = o3.Linear(irreps_in, self.gate.irreps_in, biases=False)
        self.linear_in = o3.Linear(irreps_in + fidelity, irreps_in, biases=False)
        self.convolution = EdgeConvolution(irreps_in, irreps_sh, keep)
        self.radial = FullyConnectedNet([num_basis, *radial_hidden, self.convolution.weight_numel], F.silu)
        self.linear_out = o3.Linear(self.convolution.irreps_out + fidelity, self.gate.irreps_in, biases=False)
        self.register_buffer("denominator", torch.tensor(float(denominator)))

    def forward(
        self,
        x: torch.Tensor,
        sh: torch.Tensor,
        radial: torch.Tensor,
        center: torch.Tensor,
        neighbor: torch.Tensor,
        fidelity: torch.Tensor | None,
    ) -> torch.Tensor:
        """x [N, irreps_in.dim]; sh [E, dim], center, neighbor [E] of the directed edges (the U
        bonds one way, then the other); radial [U, num_basis] per bond; fidelity [N,
        fidelity_dim] or None -> [N, irreps_out.dim]."""
        skip = self.self_connection(x)
        x = self.linear_in(_with(x, fidelity))
        messages = self.convolution(x, sh, self.radial(radial), center, neighbor) / self.denominator
        return self.gate(self.linear_out(_with(messages, fidelity)) + skip)


def _with(x: torch.Tensor, fidelity: torch.Tensor | None) -> torch.Tensor:
    return x if fidelity is None else torch.cat([x, fidelity], dim=1)
