"""Ingested DFT frames → a fine-tuning dataset: every ionic step (the off-equilibrium ones carry the
curvature).

Energies are put on the base model's scale: raw PBE(+U) for a "raw-pbe" model, MP2020-corrected
(the calculation's own correction per atom, the same for all its steps) for an "mp2020" model.
Calculations of the PBE family that the MP2020 scheme rejects (U values other than MP's) give
forces and stresses only; other functionals (r2SCAN) are left out, their forces being another
functional's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matsearch.dft.read import PBE_RUN_TYPES, DftFrame
from matsearch.mlip.training.finetune import LabelledStructure
from matsearch.mlip.units import EV_PER_A3_IN_GPA


@dataclass(frozen=True)
class FrameSet:
    """The frames of one ingested calculation and how their energies may be used."""

    frames: Sequence[DftFrame]
    run_type: str
    correction_ev_per_atom: float | None  # MP2020 corrected − raw; None when not comparable


def labelled_frames(
    frames: Sequence[DftFrame], energy_shift_ev_per_atom: float | None
) -> list[LabelledStructure]:
    """`frames` as training examples: energy + shift × atoms (None: no energy label), forces,
    stress (GPa → eV/Å³, ASE sign as `MLIPModel.compute`)."""
    examples = []
    for frame in frames:
        n = len(frame.structure)
        energy = None if energy_shift_ev_per_atom is None else frame.energy_ev + energy_shift_ev_per_atom * n
        stress = None if frame.stress_gpa is None else np.asarray(frame.stress_gpa) / EV_PER_A3_IN_GPA
        examples.append(LabelledStructure(frame.structure, energy, frame.forces, stress))
    return examples


def training_set(frame_sets: Sequence[FrameSet], energy_convention: str) -> list[LabelledStructure]:
    """Every usable frame of `frame_sets` for a base model of `energy_convention` (module docstring)."""
    examples = []
    for item in frame_sets:
        if item.run_type.upper() not in PBE_RUN_TYPES:
            continue
        if item.correction_ev_per_atom is None:
            shift = None
        else:
            shift = item.correction_ev_per_atom if energy_convention == "mp2020" else 0.0
        examples.extend(labelled_frames(item.frames, shift))
    return examples
