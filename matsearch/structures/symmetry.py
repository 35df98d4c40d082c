"""Space group of a structure, for status, reports and exports."""

from __future__ import annotations

from dataclasses import dataclass

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

SYMPREC_ANGSTROM = 0.1  # spglib distance tolerance, Å (Materials Project's choice for relaxed structures)
# what pymatgen raises when spglib gives up on a cell (no dataset): catch these wherever spglib runs
SPGLIB_ERRORS = (TypeError, ValueError)


@dataclass(frozen=True)
class SpaceGroup:
    """International (Hermann–Mauguin) symbol and number (1–230)."""

    symbol: str
    number: int


def space_group(structure: Structure, symprec: float = SYMPREC_ANGSTROM) -> SpaceGroup | None:
    """The space group spglib finds within `symprec` (Å), or None where spglib finds none."""
    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
        return SpaceGroup(analyzer.get_space_group_symbol(), int(analyzer.get_space_group_number()))
    except SPGLIB_ERRORS:  # spglib gives up on some distorted cells (no dataset)
        return None
