"""Small test crystals written out site by site (pymatgen's from_spacegroup takes ~1 s each)."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

_FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
_FCC_SHIFTED = [[0.5, 0.5, 0.5], [0, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0]]


def rocksalt(a: float = 5.64, cation: str = "Na", anion: str = "Cl") -> Structure:
    """Conventional rock-salt cell (8 atoms), cubic lattice constant `a` in Å."""
    return Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4, _FCC + _FCC_SHIFTED)


def wurtzite(a: float = 3.19, c: float = 5.19, u: float = 0.377) -> Structure:
    """Wurtzite GaN (4 atoms), a and c in Å, internal parameter u."""
    return Structure(
        Lattice.hexagonal(a, c),
        ["Ga", "Ga", "N", "N"],
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]],
    )
