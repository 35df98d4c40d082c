"""Result records shared by the MLIP, the evaluation stage and the engine.

A leaf module: it imports nothing from matsearch, so `mlip/` (the bottom layer) and the engine
(the top) can both use it without an import running upward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymatgen.core import Structure

# What a model's energies mean: "mp2020" (MP2020-corrected, as CHGNet is trained) or "raw-pbe"
# (uncorrected PBE/PBE+U, as SevenNet is trained); scoring corrects raw energies for the hull.
ENERGY_CONVENTIONS = ("mp2020", "raw-pbe")


@dataclass
class RelaxResult:
    """Outcome of relaxing one structure.

    On failure `structure` is None and `error` says why in one sentence
    (e.g. "relaxation exceeded 120 s wall-clock timeout").
    """

    structure: Structure | None  # relaxed structure
    energy_per_atom: float | None  # eV/atom at the relaxed structure
    initial_energy_per_atom: float | None  # eV/atom of the input structure
    converged: bool = False  # max force below fmax (and stress below its tolerance) at the end
    steps: int = 0  # optimiser steps taken
    wall_time_s: float = 0.0
    error: str | None = None
    forces_max: float | None = None  # eV/Å, at the last step
    forces: list[list[float]] | None = None  # [n_sites][3] eV/Å at the relaxed structure, site order
    stress_gpa: list[list[float]] | None = None  # 3x3 GPa at the relaxed structure, ASE sign (+ = tensile)
    magmoms: list[float] | None = None  # μB per site at the relaxed structure
    energy_convention: str = "mp2020"  # of the energies above: one of ENERGY_CONVENTIONS


@dataclass
class Evaluation:
    """Everything the evaluation stage computed for one structure.

    `relax` is the relaxation; `scores` holds the property objectives computed on the relaxed
    structure, by objective name (`bulk_modulus` in GPa, `strain_energy` in eV/atom), and
    `errors` says in one sentence why a requested property could not be computed.
    """

    relax: RelaxResult
    scores: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    property_time_s: float = 0.0  # wall-clock seconds spent on this structure's property scans
