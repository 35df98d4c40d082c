"""DFT scores on the run's hull: MP2020-corrected energy → formation energy and energy above hull.

pymatgen's ``MaterialsProject2020Compatibility`` is applied with the calculation's own parameters
(run type, U values), as the Materials Project does for its own entries. A calculation it rejects
(another functional such as r2SCAN, U values other than MP's) is kept with its raw energy and
marked not comparable with the PBE hull, never mixed in. Stability classes use the thresholds
of the MLIP scores: stable at e_hull ≤ 0, metastable below METASTABLE_EV_PER_ATOM. eV/atom throughout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

from pymatgen.analysis.compatibility import MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedStructureEntry

from matsearch.dft.read import DftCalculation
from matsearch.scoring.hull import HullReference
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM

STABLE_TOLERANCE_EV_PER_ATOM = 1e-6  # on the hull within rounding


@dataclass(frozen=True)
class DftScores:
    """Scores of one calculation; the hull values are None when it is not comparable."""

    energy_per_atom_ev: float  # raw DFT, final step
    corrected_energy_per_atom_ev: float | None  # MP2020-corrected
    formation_energy_ev_per_atom: float | None
    e_above_hull_ev_per_atom: float | None
    comparable: bool
    note: str | None  # why it is not comparable


@lru_cache(maxsize=1)
def _compatibility() -> MaterialsProject2020Compatibility:
    return MaterialsProject2020Compatibility(check_potcar=False)


def score_calculation(calc: DftCalculation, hull: HullReference) -> DftScores:
    """MP2020 correction on the calculation's own parameters, then the hull (see module docstring)."""
    final = calc.final
    raw = final.energy_ev / len(final.structure)
    if not calc.is_pbe:
        note = f"{calc.run_type} energies are not comparable with the PBE(+U) hull; kept apart"
        return DftScores(raw, None, None, None, False, note)
    entry = ComputedStructureEntry(
        final.structure,
        final.energy_ev,
        parameters={
            "run_type": "GGA+U" if calc.hubbards else "GGA",
            "is_hubbard": bool(calc.hubbards),
            "hubbards": calc.hubbards,
            "potcar_symbols": calc.potcar_symbols,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corrected = _compatibility().process_entry(entry)
    if corrected is None:
        hubbards = ", ".join(f"{k}={v:g}" for k, v in calc.hubbards.items()) or "none"
        note = (
            f"MP2020 compatibility rejects this calculation (U values: {hubbards}); "
            "not comparable with the hull"
        )
        return DftScores(raw, None, None, None, False, note)
    composition = final.structure.composition
    energy = corrected.energy_per_atom
    point = hull.evaluate(composition, energy)
    return DftScores(raw, energy, point.formation_energy_per_atom, point.e_above_hull, True, None)


def stability(e_above_hull: float | None) -> str | None:
    """ "stable", "metastable" or "unstable" for an energy above hull (eV/atom); None without one."""
    if e_above_hull is None:
        return None
    if e_above_hull <= STABLE_TOLERANCE_EV_PER_ATOM:
        return "stable"
    return "metastable" if e_above_hull < METASTABLE_EV_PER_ATOM else "unstable"
