"""Batched Coulomb energy of Gaussian charges: reciprocal Ewald sum (periodic), erf sum (isolated).

Each charge q_i (e) is a Gaussian cloud; two clouds interact through k_e q_i q_j erf(r/(√2 σ))/r,
with k_e = e²/(4π ε0) = 14.3996 eV·Å/e². For a periodic structure of volume V (Å³) the energy is

    E = 1/(2 ε0 V) Σ_{k ≠ 0, |k| ≤ k_c} exp(−σ² k² / 2) / k² |S(k)|²,   S(k) = Σ_i q_i exp(i k·r_i),

with 1/(2 ε0) = 2π k_e = 90.4756 eV·Å/e². The sum runs over the full sphere: k and −k are both
counted (the code sums one half-space and doubles it). k = n1 b1 + n2 b2 + n3 b3 with b the
reciprocal vectors including 2π, and k_c = 2π / dl. The k = 0 term is dropped (uniform
neutralising background, no charged-cell correction). This is the reciprocal part of a
point-charge Ewald sum with splitting parameter α = 1 / (√2 σ), i.e. pymatgen's ``eta`` =
1 / (2 σ²) and ``recip_space_cut`` = k_c.

The sum above contains each cloud's interaction with itself, k_e q_i² / (σ √(2π)) per atom
(pymatgen's "point energy" with the opposite sign). ``remove_self_interaction=True`` subtracts it,
so that the periodic energy is the pairwise Gaussian-screened lattice sum and, for isolated
structures, the energy is exactly the pairwise erf sum Σ_{i<j}. With ``False`` the isolated
energy includes the same self term.

Batching: atoms of all structures are concatenated (``batch`` [N], non-decreasing). The k-grid is
one integer half-space grid sized for the largest cell in the batch along each lattice direction
(one host synchronisation per call, in ``batch_extents``); k-vectors outside a structure's sphere
get weight 0. Everything is differentiable with respect to positions, cell and charges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import constants

COULOMB_EV_ANGSTROM = 1e10 * constants.e / (4 * math.pi * constants.epsilon_0)
"""k_e = e²/(4π ε0) in eV·Å/e² (14.3996), the same value pymatgen's EwaldSummation uses."""

HALF_INVERSE_EPSILON0 = 2 * math.pi * COULOMB_EV_ANGSTROM
"""1/(2 ε0) in eV·Å/e² (90.4756)."""


@dataclass(frozen=True)
class BatchExtents:
    """Host-side sizes of one batch, read in a single device-to-host transfer."""

    k_grid: tuple[int, int, int]
    """Largest |n_a| needed along each lattice direction over the periodic structures."""
    any_isolated: bool
    """True when at least one structure is non-periodic."""
    max_atoms: int
    """Largest number of atoms in one structure."""


def check_screening(sigma: float, dl: float) -> None:
    """Raise ValueError unless the Gaussian width sigma and the k resolution dl (Å) are positive."""
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive width in Å, got {sigma}")
    if not dl > 0:
        raise ValueError(f"dl must be a positive length in Å (k_c = 2π/dl), got {dl}")


def periodic_structures(pbc: torch.Tensor) -> torch.Tensor:
    """[B] bool: True for fully periodic structures; ``pbc`` is [B] or [B, 3] bool."""
    return pbc.all(dim=1) if pbc.ndim == 2 else pbc.bool()


def batch_extents(
    cell: torch.Tensor, batch: torch.Tensor, pbc: torch.Tensor, k_cutoff: float
) -> BatchExtents:
    """Grid and padding sizes for a batch (one host synchronisation).

    ``pbc`` is [B] or [B, 3] bool; a structure must be periodic in all three directions or in none.
    Along lattice direction a, every k with |k| ≤ k_cutoff has |n_a| ≤ k_cutoff |a_a| / (2π).
    """
    n_systems = cell.shape[0]
    periodic = periodic_structures(pbc)
    partial = (pbc.any(dim=1) & ~periodic) if pbc.ndim == 2 else torch.zeros_like(periodic)
    lengths = torch.linalg.vector_norm(cell.detach(), dim=-1)  # [B, 3]
    n_max = torch.ceil(lengths * (k_cutoff / (2 * math.pi))).to(torch.int64)
    n_max = torch.where(periodic[:, None], n_max, 0).amax(dim=0)
    counts = torch.bincount(batch, minlength=n_systems)
    summary = torch.cat(
        [
            n_max,
            (~periodic).any().reshape(1).to(torch.int64),
            counts.max().reshape(1),
            partial.any().reshape(1).to(torch.int64),
        ]
    ).tolist()
    if summary[5]:
        index = int(torch.nonzero(partial)[0])
        raise ValueError(
            f"structure {index} has pbc={pbc[index].tolist()}; the Coulomb heads need each "
            "structure periodic in all three directions or in none"
        )
    return BatchExtents(
        k_grid=(summary[0], summary[1], summary[2]),
        any_isolated=bool(summary[3]),
        max_atoms=summary[4],
    )


def half_space_grid(k_grid: tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[M, 3] integer triples n ≠ 0 with |n_a| ≤ k_grid[a], one of each ±n pair (the one > 0)."""
    axes = [torch.arange(-n, n + 1, device=device) for n in k_grid]
    grid = torch.cartesian_prod(*axes).reshape(-1, 3)
    n1, n2, n3 = grid.unbind(dim=1)
    upper = (n1 > 0) | ((n1 == 0) & (n2 > 0)) | ((n1 == 0) & (n2 == 0) & (n3 > 0))
    return grid[upper].to(dtype)


def effective_cell(cell: torch.Tensor, periodic: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] the cell of periodic structures and the identity (Å) for isolated ones."""
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    return torch.where(periodic[:, None, None], cell, eye)


def fractional_coordinates(
    positions: torch.Tensor, inverse_cell: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    """[N, 3] fractional coordinates s with positions = s @ cell[batch]."""
    return torch.einsum("nd,nde->ne", positions, inverse_cell[batch])


def k_weights(
    cell: torch.Tensor, periodic: torch.Tensor, grid: torch.Tensor, sigma: float, k_cutoff: float
) -> torch.Tensor:
    """[B, M] weights w with E_b = Σ_m w[b, m] |S_b(k_m)|² over the half-space grid (eV/e²).

    w = 2 · 1/(2 ε0 V) · exp(−σ² k²/2) / k² for 0 < |k| ≤ k_cutoff (the 2 counts −k), else 0.
    Zero for every k of an isolated structure. ``cell`` must already be an ``effective_cell``.
    """
    reciprocal = 2 * math.pi * torch.linalg.inv(cell).transpose(1, 2)  # rows b_a, Å⁻¹
    k_vectors = torch.einsum("ma,bad->bmd", grid, reciprocal)
    k_squared = (k_vectors**2).sum(dim=-1)
    volume = torch.linalg.det(cell).abs()
    inside = (k_squared <= k_cutoff**2) & periodic[:, None]
    kernel = torch.exp(-0.5 * sigma**2 * k_squared) / k_squared
    scale = (2 * HALF_INVERSE_EPSILON0) / volume
    return torch.where(inside, kernel, torch.zeros_like(kernel)) * scale[:, None]


def self_energy(charges: torch.Tensor, batch: torch.Tensor, n_systems: int, sigma: float) -> torch.Tensor:
    """[B] Σ_i k_e q_i² / (σ √(2π)) in eV: each Gaussian cloud's interaction with itself."""
    per_atom = charges**2 * (COULOMB_EV_ANGSTROM / (sigma * math.sqrt(2 * math.pi)))
    return torch.zeros(n_systems, dtype=charges.dtype, device=charges.device).index_add(0, batch, per_atom)


def atom_slots(batch: torch.Tensor, n_systems: int) -> torch.Tensor:
    """[N] index of each atom within its structure (atoms of a structure must be contiguous)."""
    counts = torch.bincount(batch, minlength=n_systems)
    offsets = torch.cumsum(counts, dim=0) - counts
    return torch.arange(batch.shape[0], device=batch.device) - offsets[batch]


def pad_atoms(
    values: torch.Tensor, batch: torch.Tensor, slots: torch.Tensor, n_systems: int, max_atoms: int
) -> torch.Tensor:
    """[B, max_atoms, ...] per-structure layout of per-atom ``values``; padding is zero."""
    padded = values.new_zeros((n_systems, max_atoms, *values.shape[1:]))
    return padded.index_put((batch, slots), values)


def gaussian_pair_kernel(distance: torch.Tensor, sigma: float) -> torch.Tensor:
    """k_e erf(r / (√2 σ)) / r in eV/e² for r > 0 (Å)."""
    return COULOMB_EV_ANGSTROM * torch.erf(distance / (math.sqrt(2) * sigma)) / distance


def padded_distances(
    positions: torch.Tensor,
    batch: torch.Tensor,
    slots: torch.Tensor,
    n_systems: int,
    max_atoms: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise distances [B, n, n] in Å (1 where not a pair) and the mask of real pairs i ≠ j."""
    padded = pad_atoms(positions, batch, slots, n_systems, max_atoms)
    real = pad_atoms(torch.ones_like(batch, dtype=torch.bool), batch, slots, n_systems, max_atoms)
    distinct = ~torch.eye(max_atoms, dtype=torch.bool, device=positions.device)
    pairs = real[:, :, None] & real[:, None, :] & distinct
    squared = ((padded[:, :, None, :] - padded[:, None, :, :]) ** 2).sum(dim=-1)
    squared = torch.where(pairs, squared, torch.ones_like(squared))
    return squared.sqrt(), pairs


def reciprocal_energy(
    charges: torch.Tensor,
    positions: torch.Tensor,
    cell: torch.Tensor,
    periodic: torch.Tensor,
    batch: torch.Tensor,
    extents: BatchExtents,
    sigma: float,
    k_cutoff: float,
) -> torch.Tensor:
    """[B] reciprocal-space sum in eV (self term included; 0 for isolated structures)."""
    grid = half_space_grid(extents.k_grid, positions.device, positions.dtype)
    if grid.shape[0] == 0:
        return positions.new_zeros(cell.shape[0])
    cell = effective_cell(cell, periodic)
    weights = k_weights(cell, periodic, grid, sigma, k_cutoff)
    phase = 2 * math.pi * fractional_coordinates(positions, torch.linalg.inv(cell), batch) @ grid.T
    n_systems = cell.shape[0]
    zeros = positions.new_zeros((n_systems, grid.shape[0]))
    s_real = zeros.index_add(0, batch, charges[:, None] * torch.cos(phase))
    s_imag = zeros.index_add(0, batch, charges[:, None] * torch.sin(phase))
    return (weights * (s_real**2 + s_imag**2)).sum(dim=1)


def isolated_pair_energy(
    charges: torch.Tensor,
    positions: torch.Tensor,
    periodic: torch.Tensor,
    batch: torch.Tensor,
    extents: BatchExtents,
    sigma: float,
) -> torch.Tensor:
    """[B] Σ_{i<j} k_e q_i q_j erf(r_ij/(√2 σ))/r_ij in eV for isolated structures, 0 otherwise."""
    n_systems = periodic.shape[0]
    if not extents.any_isolated:
        return positions.new_zeros(n_systems)
    slots = atom_slots(batch, n_systems)
    distance, pairs = padded_distances(positions, batch, slots, n_systems, extents.max_atoms)
    isolated_charges = torch.where(periodic[batch], torch.zeros_like(charges), charges)
    q = pad_atoms(isolated_charges, batch, slots, n_systems, extents.max_atoms)
    kernel = torch.where(pairs, gaussian_pair_kernel(distance, sigma), torch.zeros_like(distance))
    return 0.5 * torch.einsum("bi,bij,bj->b", q, kernel, q)


def ewald_energy(
    charges: torch.Tensor,
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
    sigma: float = 1.0,
    dl: float = 2.0,
    remove_self_interaction: bool = True,
) -> torch.Tensor:
    """[B] Coulomb energy in eV of Gaussian charges (see the module docstring for the formula).

    charges [N] e, positions [N, 3] Å, cell [B, 3, 3] Å (rows are lattice vectors), batch [N] int64
    (non-decreasing), pbc [B] or [B, 3] bool. Periodic structures use the reciprocal sum with
    k_c = 2π/dl; isolated ones the direct erf sum. sigma is the Gaussian width in Å.
    """
    check_screening(sigma, dl)
    k_cutoff = 2 * math.pi / dl
    periodic = periodic_structures(pbc)
    extents = batch_extents(cell, batch, pbc, k_cutoff)
    energy = reciprocal_energy(charges, positions, cell, periodic, batch, extents, sigma, k_cutoff)
    energy = energy + isolated_pair_energy(charges, positions, periodic, batch, extents, sigma)
    self_term = self_energy(charges, batch, cell.shape[0], sigma)
    if remove_self_interaction:
        return energy - torch.where(periodic, self_term, torch.zeros_like(self_term))
    return energy + torch.where(periodic, torch.zeros_like(self_term), self_term)


def coulomb_matrix(
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
    sigma: float = 1.0,
    dl: float = 2.0,
    remove_self_interaction: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded Coulomb matrices A [B, n, n] in eV/e² and atom slots [N], with E_b = ½ q_bᵀ A_b q_b.

    E is ``ewald_energy(..., remove_self_interaction=remove_self_interaction)``. With the default
    (False) the self term sits on the diagonal and every A_b is positive semi-definite. Row/column
    ``slots[i]`` of ``A[batch[i]]`` belongs to atom i; padding rows and columns are zero. n is the
    largest structure in the batch.
    """
    check_screening(sigma, dl)
    k_cutoff = 2 * math.pi / dl
    n_systems = cell.shape[0]
    periodic = periodic_structures(pbc)
    extents = batch_extents(cell, batch, pbc, k_cutoff)
    slots = atom_slots(batch, n_systems)
    n = extents.max_atoms
    real = pad_atoms(torch.ones_like(batch, dtype=torch.bool), batch, slots, n_systems, n)
    self_pair = COULOMB_EV_ANGSTROM * math.sqrt(2 / math.pi) / sigma
    diagonal = torch.diag_embed(real.to(positions.dtype) * self_pair)
    if remove_self_interaction:
        matrix = torch.where(periodic[:, None, None], -diagonal, torch.zeros_like(diagonal))
    else:
        matrix = torch.where(periodic[:, None, None], torch.zeros_like(diagonal), diagonal)
    grid = half_space_grid(extents.k_grid, positions.device, positions.dtype)
    if grid.shape[0] > 0:
        eff_cell = effective_cell(cell, periodic)
        weights = k_weights(eff_cell, periodic, grid, sigma, k_cutoff)  # [B, M]
        frac = fractional_coordinates(positions, torch.linalg.inv(eff_cell), batch)
        phase = pad_atoms(2 * math.pi * frac @ grid.T, batch, slots, n_systems, n)  # [B, n, M]
        cos_part = torch.cos(phase) * real[:, :, None]
        sin_part = torch.sin(phase) * real[:, :, None]
        weighted_cos = cos_part * weights[:, None, :]
        weighted_sin = sin_part * weights[:, None, :]
        matrix = matrix + 2 * (
            weighted_cos @ cos_part.transpose(1, 2) + weighted_sin @ sin_part.transpose(1, 2)
        )
    if extents.any_isolated:
        distance, pairs = padded_distances(positions, batch, slots, n_systems, n)
        pairs = pairs & ~periodic[:, None, None]
        kernel = gaussian_pair_kernel(distance, sigma)
        matrix = matrix + torch.where(pairs, kernel, torch.zeros_like(kernel))
    return matrix, slots
