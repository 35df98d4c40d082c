"""Crystal structure prediction: compare candidates with a known answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.errors import SpecError


def load_known_structure(path: Path | None) -> Structure | None:
    """The known answer of a CSP task (CIF, POSCAR, or anything pymatgen reads)."""
    if path is None:
        return None
    try:
        return Structure.from_file(path)
    except FileNotFoundError:
        raise SpecError(f"task.known_structure '{path}' does not exist") from None
    except Exception as exc:  # pymatgen raises many types for unreadable files
        raise SpecError(f"task.known_structure '{path}' is not a readable structure file ({exc})") from None


def csp_match(known: Structure, candidates: Sequence[Candidate]) -> tuple[int, float] | None:
    """(id, RMSD) of the lowest-energy relaxed candidate matching `known` (StructureMatcher defaults;
    RMSD normalised by (V/n)^(1/3) as pymatgen defines it), or None when none matches."""
    matcher = StructureMatcher()
    formula = known.composition.reduced_formula
    for candidate in sorted(candidates, key=lambda c: (c.energy_per_atom, c.id)):
        relaxed = candidate.relaxed
        if relaxed is None or relaxed.composition.reduced_formula != formula:
            continue
        distance = matcher.get_rms_dist(known, relaxed)
        if distance is not None:
            return candidate.id, float(distance[0])
    return None
