"""MLIP energies on the scale of the hull: the Materials Project 2020 correction scheme.

The hull's DFT formation energies are MP2020-corrected. A model trained on corrected energies
(CHGNet, ``energy_convention`` "mp2020") is already on that scale; a model trained on raw PBE/PBE+U
energies (SevenNet, "raw-pbe") is corrected here exactly as Matbench Discovery does it: a
``ComputedStructureEntry`` with MP's run type and U values for its composition (GGA+U with MP's U
on Co, Cr, Fe, Mn, Mo, Ni, V, W when O or F is the most electronegative element, else GGA), then
pymatgen's ``MaterialsProject2020Compatibility`` (anion and GGA/GGA+U mixing corrections, oxide type
read from the structure). Energies are eV/atom.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

from pymatgen.analysis.compatibility import MaterialsProject2020Compatibility
from pymatgen.core import Composition, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from matsearch.results import ENERGY_CONVENTIONS


class CorrectionError(ValueError):
    """An energy the MP2020 scheme cannot put on the hull's scale."""


@lru_cache(maxsize=1)
def _compatibility() -> MaterialsProject2020Compatibility:
    return MaterialsProject2020Compatibility(check_potcar=False)


def mp_calculation_parameters(composition: Composition) -> dict[str, object]:
    """The run type and U values (eV) the Materials Project uses for `composition`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen: noble gases have no electronegativity (NaN)
        elements = sorted((el for el in composition.elements if composition[el] > 0), key=lambda el: el.X)
    u_values = _compatibility().u_settings.get(elements[-1].symbol, {})
    hubbards = {el.symbol: float(u_values[el.symbol]) for el in elements if el.symbol in u_values}
    return {"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards}


def mp2020_energy_per_atom(structure: Structure, energy_per_atom: float, convention: str) -> float:
    """`energy_per_atom` (eV/atom, in the model's `convention`) on the MP2020-corrected scale."""
    if convention == "mp2020":
        return energy_per_atom
    if convention != "raw-pbe":
        raise ValueError(f"unknown energy convention {convention!r}; expected one of {ENERGY_CONVENTIONS}")
    entry = ComputedStructureEntry(
        structure,
        energy_per_atom * len(structure),
        parameters=mp_calculation_parameters(structure.composition),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "failed to guess oxidation states": MP's own fallback applies
        corrected = _compatibility().process_entry(entry)
    if corrected is None:
        raise CorrectionError(
            f"the MP2020 correction scheme rejects {structure.composition.reduced_formula}, so its raw "
            "PBE energy cannot be compared with the hull"
        )
    return corrected.energy_per_atom
