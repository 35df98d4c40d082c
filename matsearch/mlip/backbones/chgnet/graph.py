"""Batched crystal graphs: periodic neighbour lists (atom graph), short bonds (bond graph), angles.

Everything is vectorised in torch over all structures of a batch (no Python loop over atoms or
structures) and runs on whatever device the positions live on. Indices only: the graph is built
without gradients, and the model recomputes bond vectors from positions so that forces and stress
flow through them.

Conventions: a bond ``u`` joins atom ``i = bond_atoms[0, u]`` to the periodic image of atom
``j = bond_atoms[1, u]`` displaced by ``bond_images[u] @ cell[bond_system[u]]``; its vector is
``r_j + image @ cell - r_i`` (Å). Each unordered pair of (atom, image) appears once: either
``i < j``, or ``i == j`` with a lexicographically positive image. The two directed edges of bond
``u`` are ``i -> j`` (direction +1) and ``j -> i`` (direction -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from matsearch.mlip.inputs import refuse_coincident_pairs
from matsearch.mlip.neighbors import neighbor_pairs


@dataclass
class CrystalGraph:
    """Atom graph (bonds shorter than the atom cutoff) and bond graph (angles between short bonds).

    Attributes:
        bond_atoms: [2, U] int64 global atom indices (i, j) of each undirected bond.
        bond_images: [U, 3] lattice translation (integer valued, positions' dtype) of atom j.
        bond_system: [U] int64 system index of each bond.
        edge_center: [2U] int64 centre atom of each directed edge (i of bond u, then j of bond u).
        edge_neighbor: [2U] int64 neighbour atom of each directed edge.
        short_bonds: [S] int64 indices of bonds shorter than the bond-graph cutoff.
        angle_center: [A] int64 atom at the vertex of each angle.
        angle_bonds: [2, A] int64 positions in ``short_bonds`` of the two bonds of each angle.
        angle_sign: [A] float product of the bonds' directions seen from the vertex (+1 or -1).
    """

    bond_atoms: torch.Tensor
    bond_images: torch.Tensor
    bond_system: torch.Tensor
    edge_center: torch.Tensor
    edge_neighbor: torch.Tensor
    short_bonds: torch.Tensor
    angle_center: torch.Tensor
    angle_bonds: torch.Tensor
    angle_sign: torch.Tensor

    @property
    def n_bonds(self) -> int:
        """Number of undirected bonds U."""
        return self.bond_atoms.shape[1]

    @property
    def n_angles(self) -> int:
        """Number of angles A (ordered pairs of distinct short directed edges at one atom)."""
        return self.angle_center.shape[0]


def angle_triplets(
    i: torch.Tensor, j: torch.Tensor, n_atoms: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Angles between every ordered pair of distinct short directed edges sharing a centre atom.

    Args:
        i, j: [S] atom indices of the short bonds (directed edges i -> j and j -> i).
        n_atoms: total number of atoms N.

    Returns:
        (centre [A], first bond [A], second bond [A], sign [A] int64) with bond indices in [0, S).
    """
    device = i.device
    n_short = i.shape[0]
    centers = torch.cat([i, j])
    bond = torch.arange(n_short, device=device).repeat(2)
    direction = torch.cat([torch.ones(n_short, dtype=torch.long, device=device), -torch.ones_like(i)])
    order = torch.argsort(centers, stable=True)
    centers, bond, direction = centers[order], bond[order], direction[order]

    per_atom = torch.bincount(centers, minlength=n_atoms)
    atom_start = torch.cumsum(per_atom, 0) - per_atom
    partners = per_atom[centers]
    first = torch.repeat_interleave(torch.arange(centers.shape[0], device=device), partners)
    partner_start = torch.cumsum(partners, 0) - partners
    second = atom_start[centers[first]] + torch.arange(first.shape[0], device=device) - partner_start[first]
    distinct = first != second
    first, second = first[distinct], second[distinct]
    return centers[first], bond[first], bond[second], direction[first] * direction[second]


def build_graph(
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
    atom_cutoff: float = 6.0,
    bond_cutoff: float = 3.0,
) -> CrystalGraph:
    """Build the batched atom graph (``atom_cutoff`` Å) and bond graph (``bond_cutoff`` Å).

    Shapes as in :func:`neighbor_pairs`; gradients are not tracked.
    """
    with torch.no_grad():
        positions = positions.detach()
        cell = cell.detach()
        i, j, images, lengths = neighbor_pairs(positions, cell, batch, pbc, atom_cutoff)
        refuse_coincident_pairs(i, j, lengths, batch)
        short = torch.nonzero(lengths < bond_cutoff).squeeze(1)
        center, first, second, sign = angle_triplets(i[short], j[short], positions.shape[0])
        return CrystalGraph(
            bond_atoms=torch.stack([i, j]),
            bond_images=images.to(positions.dtype),
            bond_system=batch[i],
            edge_center=torch.cat([i, j]),
            edge_neighbor=torch.cat([j, i]),
            short_bonds=short,
            angle_center=center,
            angle_bonds=torch.stack([first, second]),
            angle_sign=sign.to(positions.dtype),
        )
