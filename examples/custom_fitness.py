"""Example custom fitness functions for matsearch.

A fitness function takes the relaxed structure (pymatgen ``Structure``) and a ``results`` dict
(energy_per_atom and e_above_hull in eV/atom, stress in GPa, scores, ...; the full list is in
``matsearch.scoring.custom``) and returns a float, or a dict of floats for several scores.

Use one from a run spec by dotted path (run matsearch from the folder that holds ``examples/``)::

    objectives:
      - {name: e_above_hull, direction: min}
      - {name: "custom:density", direction: max}
    custom:
      density: "examples.custom_fitness:density"

A float becomes the score ``custom:<name>``; a dict ``{"a": 1.0}`` becomes ``custom:<name>.a``.
If a function raises, the candidate simply gets no score for it (ranked last on that objective)
and the reason is stored with the candidate; the run carries on.

Functions decorated with ``@matsearch.fitness("name")`` can also be named without a path once
their module has been imported (for example by the Python API before ``Search(...).run()``).
"""

from __future__ import annotations

from typing import Any

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

import matsearch

SUBSTRATE_A_ANGSTROM = 4.05  # e.g. an fcc Al substrate for epitaxial growth


@matsearch.fitness("density")
def density(structure: Structure, results: dict[str, Any]) -> float:
    """Mass density in g/cm³ (maximise for dense, hard phases)."""
    return float(structure.density)


def lattice_mismatch(structure: Structure, results: dict[str, Any]) -> float:
    """Relative mismatch |a − a_sub| / a_sub of the conventional cell's a to a substrate.

    Minimise it, or use it as a constraint (``bounds: [null, 0.03]``) to keep phases that could
    grow on the substrate.
    """
    conventional = SpacegroupAnalyzer(structure, symprec=0.1).get_conventional_standard_structure()
    return abs(conventional.lattice.a - SUBSTRATE_A_ANGSTROM) / SUBSTRATE_A_ANGSTROM


def packing(structure: Structure, results: dict[str, Any]) -> dict[str, float]:
    """Several scores at once: volume per atom (Å³/atom) and energy density (eV/Å³).

    Gives the scores ``custom:packing.volume_per_atom`` and ``custom:packing.energy_density``.
    """
    volume_per_atom = structure.volume / len(structure)
    return {
        "volume_per_atom": volume_per_atom,
        "energy_density": results["energy_per_atom"] / volume_per_atom,
    }
