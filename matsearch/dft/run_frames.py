"""The DFT frames ingested into a run, as a fine-tuning dataset for `matsearch mlip finetune --from-run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matsearch.dft.read import DftFrame
from matsearch.dft.training import FrameSet, training_set
from matsearch.errors import DftInputError
from matsearch.mlip import load_model
from matsearch.mlip.training.finetune import LabelledStructure
from matsearch.store import RunStore
from matsearch.structures.codec import structure_from_json


def run_frame_sets(run_dir: Path) -> list[FrameSet]:
    """Every ingested calculation's frames with its run type and MP2020 correction (eV/atom)."""
    with RunStore.open(Path(run_dir), lock=False) as store:
        results = store.dft_results(frames=True)
    sets = []
    for row in results:
        frames = [
            DftFrame(
                structure_from_json(f["structure"]),
                f["energy_ev"],
                None if f["forces"] is None else np.asarray(f["forces"]),
                None if f["stress_gpa"] is None else np.asarray(f["stress_gpa"]),
            )
            for f in row["frames"]
        ]
        corrected = row["corrected_energy_per_atom_ev"]
        correction = None if corrected is None else corrected - row["energy_per_atom_ev"]
        sets.append(FrameSet(frames, row["run_type"], correction))
    return sets


def run_training_set(run_dir: Path, base: str) -> list[LabelledStructure]:
    """The run's ingested frames on the energy scale of model `base` (see dft.training)."""
    convention = load_model(base, device="cpu").energy_convention
    dataset = training_set(run_frame_sets(run_dir), convention)
    if not dataset:
        raise DftInputError(
            f"run '{run_dir}' has no ingested PBE(+U) DFT frames to train on; "
            f"ingest VASP results first (`matsearch ingest {run_dir} PATH...`)"
        )
    return dataset
