"""Space group of a structure, for status, reports and exports.

spglib's C code prints lines such as `spglib: ssm_get_exact_positions failed.` straight to file
descriptor 2, among the run's output. Every spglib call of matsearch runs inside
`spglib_output_logged()`, which sends those lines to the log instead (run.log during a run).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

logger = logging.getLogger(__name__)
SPGLIB_PREFIX = "spglib: "  # how spglib's C code starts the lines it prints

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
        with spglib_output_logged():
            analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
            return SpaceGroup(analyzer.get_space_group_symbol(), int(analyzer.get_space_group_number()))
    except SPGLIB_ERRORS:  # spglib gives up on some distorted cells (no dataset)
        return None


@contextmanager
def spglib_output_logged() -> Iterator[None]:
    """Inside the block, what is written to file descriptor 2 is held back; afterwards spglib's
    lines go to this module's logger (INFO) and every other line back to stderr, in order."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a detached process): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
    others = []
    for line in text.splitlines(keepends=True):
        if line.startswith(SPGLIB_PREFIX):
            logger.info("%s", line.rstrip())
        else:
            others.append(line)
    if others:
        sys.stderr.write("".join(others))
        sys.stderr.flush()
