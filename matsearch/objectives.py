"""Every builtin objective, declared once: name, unit, default direction, how it is computed, what
the LLM prompt says it measures, its `status` column label and its export manifest column.

Spec validation (`spec.Objective`), the prompts (`proposers/goals.py`), the evaluator
(`evaluation/evaluator.py`), status (`summary.py`, `status_view.py`), the report and the export
manifest all read `OBJECTIVES`; adding a builtin objective is one entry here (plus its function
when it is computed from the relaxed structure). How an objective is computed (`source`):

- "relaxation": set from the relaxation itself (`scoring/objectives.py`, `apply_relax_result`);
- "property": a property scan the evaluator runs with the model after relaxing (`Evaluator.SCANS`);
- "structure": `of_structure(relaxed structure)`, computed by the evaluator, no model call.

A `custom:<name>` objective is the user's function; its unit is whatever its docstring says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pymatgen.core import Structure

CUSTOM_PREFIX = "custom:"
Source = Literal["relaxation", "property", "structure"]


@dataclass(frozen=True)
class BuiltinObjective:
    """One builtin objective (see the module docstring for `source`)."""

    name: str
    unit: str
    meaning: str  # what it measures, in the words the LLM prompt uses
    short: str  # column label of `matsearch status`
    column: str  # export manifest column, unit in the name
    source: Source
    direction: Literal["min", "max"] = "min"  # when the spec gives neither direction nor target
    of_structure: Callable[[Structure], float] | None = None  # source "structure" only


def density_g_per_cm3(structure: Structure) -> float:
    """Mass density of the relaxed cell, g/cm³."""
    return float(structure.density)


OBJECTIVES: dict[str, BuiltinObjective] = {
    o.name: o
    for o in (
        BuiltinObjective(
            "e_above_hull",
            "eV/atom",
            "energy above the convex hull of known phases; 0 means on the hull (thermodynamically "
            "stable), below 0.1 is metastable",
            "e_hull",
            "e_above_hull_ev_per_atom",
            "relaxation",
        ),
        BuiltinObjective(
            "deformation_energy",
            "eV/atom",
            "energy released when the proposed structure is relaxed (E_proposed - E_relaxed); small "
            "means the proposal was already close to a local minimum",
            "ΔE deform",
            "deformation_energy_ev_per_atom",
            "relaxation",
        ),
        BuiltinObjective(
            "formation_energy",
            "eV/atom",
            "formation energy from the elements",
            "E_form",
            "formation_energy_ev_per_atom",
            "relaxation",
        ),
        BuiltinObjective(
            "energy_per_atom",
            "eV/atom",
            "total energy per atom of the relaxed structure",
            "E",
            "energy_per_atom_ev",
            "relaxation",
        ),
        BuiltinObjective(
            "bulk_modulus",
            "GPa",
            "bulk modulus, the resistance to uniform compression (stiffness)",
            "B",
            "bulk_modulus_gpa",
            "property",
        ),
        BuiltinObjective(
            "strain_energy",
            "eV/atom",
            "energy needed to impose a small strain after internal relaxation (stiffness)",
            "E_strain",
            "strain_energy_ev_per_atom",
            "property",
        ),
        BuiltinObjective(
            "density",
            "g/cm³",
            "mass density of the relaxed crystal",
            "ρ",
            "density_g_per_cm3",
            "structure",
            direction="max",
            of_structure=density_g_per_cm3,
        ),
    )
}


def unit_of(name: str) -> str | None:
    """Unit of a builtin objective's score; None for a custom score (its function's docstring says)."""
    builtin = OBJECTIVES.get(name)
    return None if builtin is None else builtin.unit


def computed_after_relaxing(names: list[str] | tuple[str, ...]) -> list[str]:
    """Those of `names` the evaluator computes after relaxing (source "property" or "structure")."""
    return [n for n in names if n in OBJECTIVES and OBJECTIVES[n].source != "relaxation"]
