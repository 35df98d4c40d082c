"""The equivariant convolution of a NequIP interaction block, fused for speed.

For every directed edge c <- n (centre c, neighbour n, unit vector from c to n), each channel u of
the neighbour's features x_n of degree l1 is coupled with the spherical harmonics Y(r̂) of degree
l2 into degree l3 and weighted by that edge's radial weight w[u, path]:

    m_c[path, u, k] = Σ_edges w[u, path] · sqrt(2 l3 + 1) · Σ_ij C(l1 l2 l3)[i, j, k] x_n[u, i] Y[j]

(C: e3nn's Wigner 3j symbols; "uvu" paths with the normalisation of e3nn's TensorProduct, whose
output layout — sorted irreps, each (mul, ir) block channel-major — this returns). Instead of one
einsum per path, the paths sharing (l1, l3) are done together: the edge's coupling matrices come
from one matmul of Y with precomputed coefficients, the channels from one batched matmul, and the
radial weights broadcast over the m components; each group is summed onto the centre atoms as
soon as it is formed. About 3x faster than e3nn's TensorProduct followed by a scatter on one CPU
thread (forward and backward), identical to float rounding (tests/mlip/test_nequip.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from e3nn import o3
from torch import nn


@dataclass(frozen=True)
class _Path:
    x_block: int  # index of the input irrep (mul, l1) in irreps_x
    sh_block: int  # index of the spherical-harmonics irrep l2
    l1: int
    l2: int
    l3: int
    mul: int
    unsorted_slot: int  # position in the output irreps before sorting


@dataclass(frozen=True)
class _Group:
    """Paths that share the input block (mul, l1) and the output degree l3."""

    x_start: int
    x_stop: int
    mul: int
    d1: int  # 2 l1 + 1
    n_paths: int
    d3: int  # 2 l3 + 1


def coupling_paths(irreps_x: o3.Irreps, irreps_sh: o3.Irreps, irreps_keep: o3.Irreps) -> list[_Path]:
    """Every (x irrep, Y irrep, output irrep) whose output is in `irreps_keep`, in e3nn's order."""
    paths = []
    for x_block, (mul, ir_x) in enumerate(irreps_x):
        for sh_block, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_x * ir_sh:
                if ir_out in irreps_keep:
                    paths.append(_Path(x_block, sh_block, ir_x.l, ir_sh.l, ir_out.l, mul, len(paths)))
    return paths


class EdgeConvolution(nn.Module):
    """Σ over directed edges of the weighted coupling of neighbour features with Y (see module).

    ``irreps_out`` are the sorted output irreps; ``weight_numel`` the radial weights per edge,
    ordered as e3nn's TensorProduct orders its instructions (sorted by output irrep).
    """

    def __init__(self, irreps_x: o3.Irreps, irreps_sh: o3.Irreps, irreps_keep: o3.Irreps) -> None:
        super().__init__()
        paths = coupling_paths(irreps_x, irreps_sh, irreps_keep)
        if not paths:
            raise ValueError(f"no coupling of {irreps_x} with {irreps_sh} gives any of {irreps_keep}")
        unsorted = o3.Irreps(
            [(p.mul, (p.l3, irreps_x[p.x_block].ir.p * irreps_sh[p.sh_block].ir.p)) for p in paths]
        )
        self.irreps_out, permutation, _ = unsorted.sort()
        sorted_slot = [permutation[p.unsorted_slot] for p in paths]
        weight_start, start = {}, 0
        for k in sorted(range(len(paths)), key=lambda k: sorted_slot[k]):
            weight_start[k] = start
            start += paths[k].mul
        self.weight_numel = start
        sh_offsets = _offsets([ir.dim for _, ir in irreps_sh])
        x_offsets = _offsets([mul * ir.dim for mul, ir in irreps_x])
        out_offsets = _offsets([mul * ir.dim for mul, ir in self.irreps_out])

        by_group: dict[tuple[int, int], list[int]] = {}
        for k, path in enumerate(paths):
            by_group.setdefault((path.x_block, path.l3), []).append(k)
        self.groups: list[_Group] = []
        columns = []
        for g, ((x_block, l3), members) in enumerate(sorted(by_group.items())):
            mul, ir = irreps_x[x_block]
            d1, d3 = ir.dim, 2 * l3 + 1
            coefficients = torch.zeros(irreps_sh.dim, d1, len(members), d3, dtype=torch.float64)
            for q, k in enumerate(members):
                p = paths[k]
                w3j = o3.wigner_3j(p.l1, p.l2, l3, dtype=torch.float64)  # [d1, d2, d3]
                sh = slice(sh_offsets[p.sh_block], sh_offsets[p.sh_block + 1])
                coefficients[sh, :, q, :] = math.sqrt(d3) * w3j.permute(1, 0, 2)
            coefficients = coefficients.reshape(irreps_sh.dim, -1).to(torch.get_default_dtype())
            self.register_buffer(f"coefficients_{g}", coefficients)
            weight_columns = [[weight_start[k] + u for k in members] for u in range(mul)]
            self.register_buffer(f"weight_columns_{g}", torch.tensor(weight_columns).reshape(-1))
            channel = torch.arange(mul)[:, None] * d3 + torch.arange(d3)[None, :]  # [mul, d3]
            columns.append(
                torch.stack([out_offsets[sorted_slot[k]] + channel for k in members], dim=1).reshape(-1)
            )
            self.groups.append(_Group(x_offsets[x_block], x_offsets[x_block + 1], mul, d1, len(members), d3))
        grouped = torch.cat(columns)  # grouped layout -> position in the sorted output layout
        to_sorted = torch.empty_like(grouped)
        to_sorted[grouped] = torch.arange(grouped.numel())
        self.register_buffer("to_sorted", to_sorted)

    def forward(
        self,
        x: torch.Tensor,
        sh: torch.Tensor,
        bond_weights: torch.Tensor,
        center: torch.Tensor,
        neighbor: torch.Tensor,
    ) -> torch.Tensor:
        """x [N, irreps_x.dim]; sh [E, irreps_sh.dim], center and neighbor [E] of the E = 2U
        directed edges, the U bonds one way and then the other; bond_weights [U, weight_numel]
        (the radial weights depend on the length only, so both directions share them)
        -> [N, irreps_out.dim]."""
        n_edges = sh.shape[0]
        gathered: dict[int, torch.Tensor] = {}
        summed = []
        for g, group in enumerate(self.groups):
            if group.x_start not in gathered:
                block = x[:, group.x_start : group.x_stop].index_select(0, neighbor)
                gathered[group.x_start] = block.view(n_edges, group.mul, group.d1)
            x_edge = gathered[group.x_start]
            coupling = (sh @ getattr(self, f"coefficients_{g}")).view(n_edges, group.d1, -1)
            coupled = x_edge * coupling if group.d1 == 1 else torch.bmm(x_edge, coupling)
            w = bond_weights.index_select(1, getattr(self, f"weight_columns_{g}")).repeat(2, 1)
            messages = coupled.view(n_edges, group.mul, group.n_paths, group.d3) * w.view(
                n_edges, group.mul, group.n_paths, 1
            )
            summed.append(
                x.new_zeros(x.shape[0], messages[0].numel()).index_add_(0, center, messages.flatten(1))
            )
        return torch.cat(summed, dim=1).index_select(1, self.to_sorted)


def _offsets(sizes: list[int]) -> list[int]:
    out = [0]
    for size in sizes:
        out.append(out[-1] + size)
    return out
