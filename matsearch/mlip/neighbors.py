"""Batched periodic neighbour lists: every pair of atoms (with lattice images) within a cutoff.

Vectorised in torch over all structures of a batch (no Python loop over atoms or structures), on
whatever device the positions live on; indices only (no gradients). Conventions: a pair ``u``
joins atom ``i`` to the periodic image of atom ``j`` displaced by ``images[u] @ cell`` (rows);
its vector is ``r_j + image @ cell - r_i`` (Å). Each unordered pair of (atom, image) appears
once: either ``i < j``, or ``i == j`` with a lexicographically positive image.
"""

from __future__ import annotations

import math

import torch

from matsearch.mlip.inputs import (
    MAX_NEIGHBORS_PER_ATOM,
    UnsupportedStructure,
    expected_neighbors_per_atom,
)

# Most candidate (atom, atom, image) pairs tested at once; bounds the peak memory of the search.
MAX_CANDIDATES_PER_CHUNK = 1 << 21
# Most (bin, neighbour bin) tuples of one cell list (~100 bytes each); only very skewed or flat
# cells need more, and they fail with a reason instead of allocating.
MAX_BIN_TUPLES = 1 << 23


def _bin_grid(
    cell: torch.Tensor, pbc: torch.Tensor, counts: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bins per lattice direction [B, 3] and how many bins away a neighbour can be [B, 3].

    A bin spans 1/m of the cell along each lattice direction; neighbours within ``cutoff`` of an
    atom lie at most ceil(cutoff * |b_k| * m_k) bins away (b_k: reciprocal vector, i.e. column k
    of the inverse cell, without 2 pi). Bins are at least ``cutoff`` wide where the cell allows,
    and there are at most about as many bins as atoms. Non-periodic directions get one bin.
    """
    reciprocal = torch.linalg.norm(torch.linalg.inv(cell), dim=1)  # [B, 3] 1/Å
    bins = torch.floor(1.0 / (cutoff * reciprocal)).clamp(min=1)
    bins = torch.where(pbc, bins, torch.ones_like(bins))
    excess = (bins.prod(dim=1) / counts.to(bins.dtype)).clamp(min=1.0)
    bins = torch.floor(bins / excess.unsqueeze(1) ** (1.0 / 3.0)).clamp(min=1)
    reach = torch.ceil(cutoff * reciprocal * bins)
    reach = torch.where(pbc, reach, torch.zeros_like(reach))
    return bins.long(), reach.long()


def _decode(index: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mixed-radix digits [n, 3] of ``index`` [n] with per-row radices ``widths`` [n, 3]."""
    return torch.stack(
        [
            index // (widths[:, 1] * widths[:, 2]),
            (index // widths[:, 2]) % widths[:, 1],
            index % widths[:, 2],
        ],
        dim=1,
    )


def _lexicographically_positive(vectors: torch.Tensor) -> torch.Tensor:
    """True where the first non-zero component of an integer vector is positive."""
    first_nonzero = torch.where(
        vectors[:, 0] != 0,
        vectors[:, 0],
        torch.where(vectors[:, 1] != 0, vectors[:, 1], vectors[:, 2]),
    )
    return first_nonzero > 0


def neighbor_pairs(
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All undirected pairs of atoms (with periodic images) closer than ``cutoff`` Å.

    Cell list: atoms are sorted into bins of the (wrapped) unit cell; only atoms in bins within
    reach of each other are compared, each unordered pair once (half of the bin offsets).

    Args:
        positions: [N, 3] Cartesian positions (Å); atoms may lie outside the cell.
        cell: [B, 3, 3] lattice vectors as rows (Å).
        batch: [N] int64 system index, non-decreasing.
        pbc: [B, 3] bool periodicity.
        cutoff: neighbour cutoff (Å), inclusive.

    Returns:
        (i [U], j [U], images [U, 3] int64, lengths [U] Å) following the module's conventions.
    """
    device = positions.device
    n_systems = cell.shape[0]
    counts = torch.bincount(batch, minlength=n_systems)
    _check_bounded(positions, cell, counts, cutoff)

    # Wrap fractional coordinates into [0, 1) along periodic directions; remember the shift so
    # that images can be expressed relative to the caller's (unwrapped) positions.
    frac = torch.einsum("nk,nkl->nl", positions, torch.linalg.inv(cell)[batch])
    wrap = torch.where(pbc[batch], torch.floor(frac), torch.zeros_like(frac))
    wrapped = positions - torch.einsum("nk,nkl->nl", wrap, cell[batch])
    wrap = wrap.long()

    # Sort atoms by bin; bins of all systems are numbered consecutively.
    bins, reach = _bin_grid(cell, pbc, counts, cutoff)
    atom_bins = bins[batch]
    atom_bin = torch.where(pbc[batch], torch.floor((frac - wrap) * atom_bins).long(), torch.zeros_like(wrap))
    atom_bin = torch.minimum(atom_bin.clamp(min=0), atom_bins - 1)
    n_bins = bins.prod(dim=1)
    first_bin = torch.cumsum(n_bins, 0) - n_bins
    atom_key = (
        first_bin[batch]
        + (atom_bin[:, 0] * atom_bins[:, 1] + atom_bin[:, 1]) * atom_bins[:, 2]
        + atom_bin[:, 2]
    )
    order = torch.argsort(atom_key, stable=True)
    bin_count = torch.bincount(atom_key, minlength=int(n_bins.sum()))
    bin_start = torch.cumsum(bin_count, 0) - bin_count

    # (home bin, offset) tuples: offsets d in [-reach, reach]^3 with d = 0 or lexicographically
    # positive, so that every unordered pair of bins is visited once.
    widths = 2 * reach + 1
    n_offsets = widths.prod(dim=1)
    per_system = n_bins * n_offsets
    if int(per_system.sum()) > MAX_BIN_TUPLES:
        worst = int(torch.argmax(per_system))
        raise UnsupportedStructure(
            f"system {worst}: the cell is so skewed that its neighbour search needs "
            f"{int(per_system[worst])} bin pairs (limit {MAX_BIN_TUPLES}); reduce the cell (LLL or Niggli)"
        )
    tuple_system = torch.repeat_interleave(torch.arange(n_systems, device=device), per_system)
    local = (
        torch.arange(tuple_system.shape[0], device=device)
        - (torch.cumsum(per_system, 0) - per_system)[tuple_system]
    )
    sys_offsets = n_offsets[tuple_system]
    home = local // sys_offsets
    offset = _decode(local % sys_offsets, widths[tuple_system]) - reach[tuple_system]
    keep = (offset == 0).all(dim=1) | _lexicographically_positive(offset)
    tuple_system, home, offset = tuple_system[keep], home[keep], offset[keep]
    tuple_bins = bins[tuple_system]
    target = _decode(home, tuple_bins) + offset
    image = torch.div(target, tuple_bins, rounding_mode="floor")
    target = target - image * tuple_bins
    target_id = (target[:, 0] * tuple_bins[:, 1] + target[:, 1]) * tuple_bins[:, 2] + target[:, 2]
    home_key = first_bin[tuple_system] + home
    target_key = first_bin[tuple_system] + target_id
    pairs = bin_count[home_key] * bin_count[target_key]
    nonempty = pairs > 0
    tuple_system, home_key, target_key, image, offset, pairs = (
        tuple_system[nonempty],
        home_key[nonempty],
        target_key[nonempty],
        image[nonempty],
        offset[nonempty],
        pairs[nonempty],
    )
    same_bin = (offset == 0).all(dim=1)
    shifts = torch.einsum("tk,tkl->tl", image.to(cell.dtype), cell[tuple_system])
    ends = torch.cumsum(pairs, 0)
    n_candidates = int(ends[-1]) if ends.numel() else 0

    found_i, found_j, found_images, found_d2 = [], [], [], []
    cutoff_sq = cutoff * cutoff
    for start in range(0, n_candidates, MAX_CANDIDATES_PER_CHUNK):
        stop = min(start + MAX_CANDIDATES_PER_CHUNK, n_candidates)
        g = torch.arange(start, stop, device=device)
        t = torch.searchsorted(ends, g, right=True)
        q = g - (ends[t] - pairs[t])
        n_target = bin_count[target_key[t]]
        a_local, b_local = q // n_target, q % n_target
        a = order[bin_start[home_key[t]] + a_local]
        b = order[bin_start[target_key[t]] + b_local]
        vec = wrapped[b] - wrapped[a] + shifts[t]
        d2 = (vec * vec).sum(dim=1)
        # Within one bin at offset 0 each unordered pair appears twice; a == b is the atom itself.
        keep = (d2 <= cutoff_sq) & (~same_bin[t] | (a_local > b_local))
        t, a, b = t[keep], a[keep], b[keep]
        # Orient each bond canonically: i < j, or i == j with a lexicographically positive image.
        flip = a > b
        sign = 1 - 2 * flip.long()
        found_i.append(torch.where(flip, b, a))
        found_j.append(torch.where(flip, a, b))
        found_images.append(image[t] * sign.unsqueeze(1))
        found_d2.append(d2[keep])

    if not found_i:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device), positions[:0, 0]
    i = torch.cat(found_i)
    j = torch.cat(found_j)
    images = torch.cat(found_images) + wrap[i] - wrap[j]
    return i, j, images, torch.cat(found_d2).sqrt()


def _check_bounded(positions: torch.Tensor, cell: torch.Tensor, counts: torch.Tensor, cutoff: float) -> None:
    """UnsupportedStructure for non-finite input or a system too dense (or flat) for a bounded
    neighbour list, before anything of the neighbour list's size is allocated."""
    if not (torch.isfinite(positions).all() and torch.isfinite(cell).all()):
        raise UnsupportedStructure("positions or cell contain NaN or infinity")
    volumes = torch.linalg.det(cell.double()).abs()
    per_atom = expected_neighbors_per_atom(1, 1.0, cutoff) * counts.double() / volumes
    if bool((per_atom > MAX_NEIGHBORS_PER_ATOM).any()) or bool((volumes == 0).any()):
        worst = int(torch.argmax(torch.where(volumes > 0, per_atom, torch.full_like(per_atom, math.inf))))
        raise UnsupportedStructure(
            f"system {worst}: {int(counts[worst])} atoms in {float(volumes[worst]):.3g} Å³ would give each "
            f"atom about {float(per_atom[worst]):.3g} neighbours within {cutoff:g} Å, more than the "
            f"{MAX_NEIGHBORS_PER_ATOM} the model accepts"
        )
