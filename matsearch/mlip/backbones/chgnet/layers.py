"""CHGNet interaction blocks: atom convolution, bond convolution and angle update.

Each block is a gated MLP over a concatenation of features gathered from the graph. Instead of
concatenating and multiplying (rows x concatenated width), the first linear layer is split by input
block: per-atom and per-bond projections are computed once and gathered, so only the per-edge
(or per-angle) block is multiplied per edge. The core and gate branches share each projection
(their output rows are stacked), so one matmul feeds both. Mathematically identical to the
concatenated form; see ``checkpoint.py`` for how CHGNet's weights are split into these blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedOutput(nn.Module):
    """Second half of a gated MLP: silu(LN(core)) * sigmoid(LN(gate)) from stacked [core|gate] rows.

    With ``hidden_dim`` > 0 the input is silu-activated and each branch has one more linear layer
    (hidden_dim -> out_dim); with ``hidden_dim`` == 0 the input already holds the branch outputs.
    """

    def __init__(self, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        if hidden_dim > 0:
            self.core_linear = nn.Linear(hidden_dim, out_dim)
            self.gate_linear = nn.Linear(hidden_dim, out_dim)
        self.core_norm = nn.LayerNorm(out_dim)
        self.gate_norm = nn.LayerNorm(out_dim)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        if self.hidden_dim > 0:
            core_hidden, gate_hidden = F.silu(stacked).chunk(2, dim=1)
            core, gate = self.core_linear(core_hidden), self.gate_linear(gate_hidden)
        else:
            core, gate = stacked.chunk(2, dim=1)
        return F.silu(self.core_norm(core)) * torch.sigmoid(self.gate_norm(gate))


class AtomConv(nn.Module):
    """Update atom features [N, atom_dim] from messages along every directed atom-graph edge.

    message(c -> n) = gatedMLP([atom_c, bond_u, atom_n]) * bond_weight_u; the sum of messages at
    each centre atom goes through a bias-free linear layer and is added to the atom's features.
    """

    def __init__(self, atom_dim: int, bond_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.width = 2 * hidden_dim
        # Rows: [center core | center gate | neighbour core | neighbour gate].
        self.atom_proj = nn.Linear(atom_dim, 2 * self.width, bias=False)
        # Rows: [core | gate]; holds the first-layer biases of both branches.
        self.bond_proj = nn.Linear(bond_dim, self.width)
        self.gated = GatedOutput(hidden_dim, atom_dim)
        self.out = nn.Linear(atom_dim, atom_dim, bias=False)

    def forward(
        self,
        atom_feas: torch.Tensor,
        bond_feas: torch.Tensor,
        bond_weights: torch.Tensor,
        edge_center: torch.Tensor,
        edge_neighbor: torch.Tensor,
    ) -> torch.Tensor:
        """Args: atom_feas [N, atom_dim]; bond_feas, bond_weights [U, *]; edge_center and
        edge_neighbor [2U] atoms of the directed edges (bond u forward, then all bonds reversed)."""
        n_bonds = bond_feas.shape[0]
        atom_proj = self.atom_proj(atom_feas)
        as_center, as_neighbor = atom_proj.chunk(2, dim=1)
        gathered = as_center.index_select(0, edge_center) + as_neighbor.index_select(0, edge_neighbor)
        stacked = (gathered.view(2, n_bonds, self.width) + self.bond_proj(bond_feas)).view(
            2 * n_bonds, self.width
        )
        out_dim = atom_feas.shape[1]
        messages = (self.gated(stacked).view(2, n_bonds, out_dim) * bond_weights).view(2 * n_bonds, out_dim)
        summed = torch.zeros_like(atom_feas).index_add_(0, edge_center, messages)
        return atom_feas + self.out(summed)


class _AngleGather(nn.Module):
    """First gated-MLP layer over [bond_1, bond_2, angle, centre atom] for every angle."""

    def __init__(self, atom_dim: int, bond_dim: int, angle_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        # Rows: [first-bond core | first-bond gate | second-bond core | second-bond gate].
        self.bond_proj = nn.Linear(bond_dim, 2 * width, bias=False)
        # Holds the first-layer biases of both branches.
        self.angle_proj = nn.Linear(angle_dim, width)
        self.atom_proj = nn.Linear(atom_dim, width, bias=False)

    def forward(
        self,
        atom_feas: torch.Tensor,
        short_bond_feas: torch.Tensor,
        angle_feas: torch.Tensor,
        angle_center: torch.Tensor,
        angle_bonds: torch.Tensor,
    ) -> torch.Tensor:
        as_first, as_second = self.bond_proj(short_bond_feas).chunk(2, dim=1)
        return (
            as_first.index_select(0, angle_bonds[0])
            + as_second.index_select(0, angle_bonds[1])
            + self.angle_proj(angle_feas)
            + self.atom_proj(atom_feas).index_select(0, angle_center)
        )


class BondConv(nn.Module):
    """Update features [S, bond_dim] of short bonds from messages along bond-graph angles.

    message(angle) = gatedMLP([bond_1, bond_2, angle, atom]) * w(bond_1) * w(bond_2); messages are
    summed onto bond_1, passed through a bias-free linear layer and added to bond_1's features.
    """

    def __init__(self, atom_dim: int, bond_dim: int, angle_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gather = _AngleGather(atom_dim, bond_dim, angle_dim, 2 * hidden_dim)
        self.gated = GatedOutput(hidden_dim, bond_dim)
        self.out = nn.Linear(bond_dim, bond_dim, bias=False)

    def forward(
        self,
        atom_feas: torch.Tensor,
        short_bond_feas: torch.Tensor,
        short_bond_weights: torch.Tensor,
        angle_feas: torch.Tensor,
        angle_center: torch.Tensor,
        angle_bonds: torch.Tensor,
    ) -> torch.Tensor:
        """Args: features [N|S|A, dim], angle_center [A], angle_bonds [2, A] indices in [0, S)."""
        stacked = self.gather(atom_feas, short_bond_feas, angle_feas, angle_center, angle_bonds)
        messages = (
            self.gated(stacked)
            * short_bond_weights.index_select(0, angle_bonds[0])
            * short_bond_weights.index_select(0, angle_bonds[1])
        )
        summed = torch.zeros_like(short_bond_feas).index_add_(0, angle_bonds[0], messages)
        return short_bond_feas + self.out(summed)


class AngleUpdate(nn.Module):
    """Update angle features [A, angle_dim]: gated MLP of [bond_1, bond_2, angle, atom]."""

    def __init__(self, atom_dim: int, bond_dim: int, angle_dim: int) -> None:
        super().__init__()
        self.gather = _AngleGather(atom_dim, bond_dim, angle_dim, 2 * angle_dim)
        self.gated = GatedOutput(0, angle_dim)

    def forward(
        self,
        atom_feas: torch.Tensor,
        short_bond_feas: torch.Tensor,
        angle_feas: torch.Tensor,
        angle_center: torch.Tensor,
        angle_bonds: torch.Tensor,
    ) -> torch.Tensor:
        """Args as in :class:`BondConv`."""
        stacked = self.gather(atom_feas, short_bond_feas, angle_feas, angle_center, angle_bonds)
        return angle_feas + self.gated(stacked)
