"""What the MLIP accepts, checked before anything is allocated.

A structure reaches the model only with finite numbers, a 3D cell, no two atoms on top of each
other, and a density low enough that the neighbour list within the cutoff stays bounded. Skewed
cells are LLL-reduced first: the same crystal, but a basis whose cell list needs few bins.
Everything that fails raises `UnsupportedStructure` with one sentence saying why.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pymatgen.core import Structure

MAX_NEIGHBORS_PER_ATOM = 1000  # expected neighbours within the atom cutoff (0.9 Å³/atom at 6 Å)
MIN_SEPARATION_A = 0.1  # Å; two atoms (or an atom and its image) closer than this coincide
MIN_CELL_SKEW = 1e-4  # |det| / (|a||b||c|) below this: the lattice vectors are (nearly) coplanar
BASIS_SHORTENING = 1e-6  # relative drop of |a|+|b|+|c| at which the reduced basis is used


class UnsupportedStructure(ValueError):
    """A structure the model cannot evaluate (non-finite, flat, overlapping or too dense)."""


def expected_neighbors_per_atom(n_atoms: int, volume: float, cutoff: float) -> float:
    """Atoms within `cutoff` Å of an atom at the mean density n_atoms / volume (Å³)."""
    return n_atoms / volume * 4.0 / 3.0 * math.pi * cutoff**3


def reduce_cell(structure: Structure) -> Structure:
    """`structure` on its LLL-reduced basis when that basis is shorter, else unchanged.

    Same crystal and site order; Cartesian frame kept (forces and stress need no rotation).
    """
    lattice = structure.lattice
    matrix = lattice.matrix
    lengths = np.linalg.norm(matrix, axis=1)
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) <= 1e-12 * np.prod(lengths):
        return structure  # no basis to reduce: check_structure rejects it
    reduced = lattice.get_lll_reduced_lattice()
    if sum(reduced.abc) >= sum(lattice.abc) * (1.0 - BASIS_SHORTENING):
        return structure
    return Structure(
        reduced,
        structure.species,
        structure.cart_coords,
        coords_are_cartesian=True,
        to_unit_cell=True,
        site_properties=structure.site_properties or None,
    )


def check_structure(structure: Structure, cutoff: float) -> None:
    """Raise UnsupportedStructure with the reason when the model cannot evaluate `structure`
    with neighbours up to `cutoff` Å; the structure should already be reduced (`reduce_cell`)."""
    n_atoms = len(structure)
    if n_atoms == 0:
        raise UnsupportedStructure("the structure has no atoms")
    matrix = structure.lattice.matrix
    coords = structure.cart_coords
    if not (np.isfinite(matrix).all() and np.isfinite(coords).all()):
        raise UnsupportedStructure("the lattice or the coordinates contain NaN or infinity")
    volume = abs(float(np.linalg.det(matrix)))
    lengths = np.linalg.norm(matrix, axis=1)
    if not lengths.all() or volume / float(np.prod(lengths)) < MIN_CELL_SKEW:
        vectors = ", ".join(f"{x:.3g}" for x in lengths)
        raise UnsupportedStructure(f"the cell is flat (volume {volume:.3g} Å³ for vectors of {vectors} Å)")
    neighbors = expected_neighbors_per_atom(n_atoms, volume, cutoff)
    if neighbors > MAX_NEIGHBORS_PER_ATOM:
        raise UnsupportedStructure(
            f"{n_atoms} atoms in {volume:.3g} Å³ would give each atom about {neighbors:.3g} neighbours "
            f"within {cutoff:g} Å, more than the {MAX_NEIGHBORS_PER_ATOM} the model accepts"
        )
    shortest = _shortest_distance(structure)
    if shortest < MIN_SEPARATION_A:
        raise UnsupportedStructure(
            f"two atoms are {shortest:.3g} Å apart (closer than {MIN_SEPARATION_A} Å: they coincide)"
        )


def refuse_coincident_pairs(
    first: torch.Tensor, second: torch.Tensor, lengths: torch.Tensor, batch: torch.Tensor
) -> None:
    """Raise UnsupportedStructure when a neighbour pair (lengths in Å) is shorter than
    MIN_SEPARATION_A: the check `compute()` makes on states that did not pass `check_structure`."""
    if lengths.numel() and float(lengths.min()) < MIN_SEPARATION_A:
        at = int(torch.argmin(lengths))
        raise UnsupportedStructure(
            f"system {int(batch[first[at]])}: atoms {int(first[at])} and {int(second[at])} are "
            f"{float(lengths[at]):.3g} Å apart (closer than {MIN_SEPARATION_A} Å: they coincide)"
        )


def _shortest_distance(structure: Structure) -> float:
    """Shortest distance (Å) between two atoms or an atom and its periodic image."""
    if len(structure) > 1:
        distances = structure.distance_matrix
        np.fill_diagonal(distances, np.inf)
        shortest = float(distances.min())
    else:
        shortest = math.inf
    return min(shortest, *structure.lattice.abc)
