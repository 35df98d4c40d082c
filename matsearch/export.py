"""Export relaxed candidates: CIF, POSCAR, extended XYZ and a CSV table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import pandas as pd
from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch.candidate import Candidate


class ExportFormat(StrEnum):
    CIF = "cif"
    POSCAR = "poscar"
    EXTXYZ = "extxyz"
    CSV = "csv"


def candidate_stem(candidate: Candidate) -> str:
    """File name stem, e.g. '0042_NaCl'."""
    return f"{candidate.id:04d}_{candidate.formula}"


def candidate_metadata(candidate: Candidate) -> dict:
    """What a DFT user needs to trace a file back to the run: lineage, energies (eV/atom), whether
    it is a known material (its id) or new, artefact flags, scores."""
    return {
        "id": candidate.id,
        "formula": candidate.formula,
        "generation": candidate.generation,
        "origin": candidate.origin,
        "operator": candidate.operator,
        "parents": candidate.parents,
        "energy_per_atom_ev": candidate.energy_per_atom,
        "e_above_hull_ev_per_atom": candidate.e_above_hull,
        "converged": candidate.converged,
        "novelty": None if candidate.novelty is None else candidate.novelty.value,
        "known_id": candidate.known_id,
        "flags": [flag.value for flag in candidate.flags],
        "scores": candidate.scores,
    }


def export_candidates(
    candidates: Sequence[Candidate], out_dir: Path, formats: Sequence[ExportFormat]
) -> list[Path]:
    """Write each relaxed candidate in each format (plus a metadata JSON); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for candidate in candidates:
        structure = candidate.relaxed or candidate.structure
        stem = candidate_stem(candidate)
        if ExportFormat.CIF in formats:
            path = out_dir / f"{stem}.cif"
            structure.to(filename=str(path), fmt="cif")
            written.append(path)
        if ExportFormat.POSCAR in formats:
            path = out_dir / f"{stem}.POSCAR"
            structure.to(filename=str(path), fmt="poscar")
            written.append(path)
        if ExportFormat.CIF in formats or ExportFormat.POSCAR in formats:
            meta_path = out_dir / f"{stem}.json"
            meta_path.write_text(json.dumps(candidate_metadata(candidate), indent=2))
            written.append(meta_path)
    if ExportFormat.EXTXYZ in formats:
        path = out_dir / "candidates.extxyz"
        frames = []
        for candidate in candidates:
            atoms = AseAtomsAdaptor.get_atoms(candidate.relaxed or candidate.structure)
            atoms.info.update(
                id=candidate.id,
                formula=candidate.formula,
                energy_per_atom_ev=candidate.energy_per_atom,
                e_above_hull_ev_per_atom=candidate.e_above_hull,
            )
            frames.append(atoms)
        ase_write(path, frames, format="extxyz")
        written.append(path)
    if ExportFormat.CSV in formats:
        path = out_dir / "candidates.csv"
        rows = [
            {k: v for k, v in candidate_metadata(c).items() if k != "scores"}
            | {f"score_{k}": v for k, v in c.scores.items()}
            for c in candidates
        ]
        pd.DataFrame(rows).to_csv(path, index=False)
        written.append(path)
    return written
