"""The equivariant convolution of a NequIP interaction block, fused for speed.

For every directed edge c <- n (centre c, neighbour n, unit vector from c to n), each channel u of
the neighbour's features x_n of degree l1 is coupled with the spherical harmonics Y(r̂) of degree
l2 into degree l3 and weighted by that edge's radial weight w[u, path]:

    m_c[path, u, k] = Σ_edges w[u, path] · sqrt(2 l3 + 1) · Σ_ij C(l1 l2 l3)[i, j, k] x_n[u, i] Y[j]

(C: e3nn's Wigner 3j symbols; "uvu" paths with the normalisation of e3nn's TensorProduct, whose
output layout — sorted irreps, each (mul, ir) block channel-major — this returns). Instead of one
einsum per path, all paths that read the same input block (mul, l1) are done together: the edge's
coupling matrix [2 l1 + 1, S] (S: the output components of all its paths) comes from one matmul of
Y with precomputed coefficients, the channels from one batched matmul, and the radial weights —
shared by both directions of a bond, expanded once per bond to the S components — multiply the
result before it is summed onto the centre atoms. About 3x faster than e3nn's TensorProduct
followed by a scatter on one CPU thread (forward and backward), equal to float rounding
(tests/mlip/test_nequip.py).
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
class _Block:
    """The paths that read one input block of `mul` channels of degree l1 (d1 = 2 l1 + 1)."""

    x_start: int
    x_stop: int
    mul: int
    d1: int
    width: int  # S: output components of all its paths together


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

    ``irreps_out`` are the sorted output irreps; ``weight_numel`` the radial weights per bond,
    ordered as e3nn's TensorProduct orders its instructions (sorted by output irrep).
    """

    def __init__(self, irreps_x: o3.Irreps, irreps_sh: o3.Irreps, irreps_keep: o3.Irreps) -> None:
        super().__init__()
        paths = coupling_paths(irreps_x, irreps_sh, irreps_keep)
        if not paths:
            raise ValueError(f"no coupling of {irreps_x} with {irreps_sh} gives any of {irreps_keep}")
        parities = [irreps_x[p.x_block].ir.p * irreps_sh[p.sh_block].ir.p for p in paths]
        unsorted = o3.Irreps([(p.mul, (p.l3, parity)) for p, parity in zip(paths, parities, strict=True)])
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

        self.blocks: list[_Block] = []
        # Exact (float64) coupling coefficients, kept off the module's buffers so that a float64
        # model uses them unrounded (a float32 buffer cast up breaks equivariance at 1e-7);
        # copies per (dtype, device) are made on first use.
        self._exact_coefficients: list[torch.Tensor] = []
        self._coefficients: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        columns = []
        for x_block, (mul, ir) in enumerate(irreps_x):
            members = [k for k, p in enumerate(paths) if p.x_block == x_block]
            if not members:
                continue
            widths = [2 * paths[k].l3 + 1 for k in members]
            starts = _offsets(widths)
            coefficients = torch.zeros(irreps_sh.dim, ir.dim, starts[-1], dtype=torch.float64)
            weight_index = torch.zeros(mul, starts[-1], dtype=torch.long)
            out_column = torch.zeros(mul, starts[-1], dtype=torch.long)
            for k, d3, s in zip(members, widths, starts, strict=False):
                p = paths[k]
                w3j = o3.wigner_3j(p.l1, p.l2, p.l3, dtype=torch.float64)  # [d1, d2, d3]
                sh = slice(sh_offsets[p.sh_block], sh_offsets[p.sh_block + 1])
                coefficients[sh, :, s : s + d3] = math.sqrt(d3) * w3j.permute(1, 0, 2)
                weight_index[:, s : s + d3] = (weight_start[k] + torch.arange(mul))[:, None]
                channel = torch.arange(mul)[:, None] * d3 + torch.arange(d3)[None, :]
                out_column[:, s : s + d3] = out_offsets[sorted_slot[k]] + channel
            index = len(self.blocks)
            self._exact_coefficients.append(coefficients.reshape(irreps_sh.dim, -1))
            self.register_buffer(f"weight_index_{index}", weight_index.reshape(-1), persistent=False)
            columns.append(out_column.reshape(-1))
            self.blocks.append(_Block(x_offsets[x_block], x_offsets[x_block + 1], mul, ir.dim, starts[-1]))
        blocked = torch.cat(columns)  # position in the blocked layout -> column of the sorted layout
        to_sorted = torch.empty_like(blocked)
        to_sorted[blocked] = torch.arange(blocked.numel())
        self.register_buffer("to_sorted", to_sorted, persistent=False)

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
        n_edges, n_bonds = sh.shape[0], bond_weights.shape[0]
        key = (sh.dtype, sh.device)
        if key not in self._coefficients:
            self._coefficients[key] = [c.to(sh.device, sh.dtype) for c in self._exact_coefficients]
        summed = []
        for index, block in enumerate(self.blocks):
            x_edge = (
                x[:, block.x_start : block.x_stop]
                .index_select(0, neighbor)
                .view(n_edges, block.mul, block.d1)
            )
            coupling = (sh @ self._coefficients[key][index]).view(n_edges, block.d1, block.width)
            coupled = x_edge * coupling if block.d1 == 1 else torch.bmm(x_edge, coupling)
            weights = bond_weights.index_select(1, getattr(self, f"weight_index_{index}"))
            width = block.mul * block.width  # explicit: a structure without edges has n_bonds = 0
            messages = coupled.view(2, n_bonds, width) * weights.view(1, n_bonds, width)
            messages = messages.view(n_edges, width)
            summed.append(x.new_zeros(x.shape[0], messages.shape[1]).index_add_(0, center, messages))
        return torch.cat(summed, dim=1).index_select(1, self.to_sorted)


def _offsets(sizes: list[int]) -> list[int]:
    out = [0]
    for size in sizes:
        out.append(out[-1] + size)
    return out
