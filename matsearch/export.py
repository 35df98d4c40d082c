"""Export relaxed candidates: symmetrised CIF (and the P1 cell on request), species-sorted POSCAR,
extended XYZ carrying energy, forces and stress, and a manifest (candidates.csv, candidates.json).

Units in the files: extxyz energy eV per cell, forces eV/Å, stress eV/Å³ with ASE's sign (the run
store keeps stress in GPa; it is converted here), as ASE's SinglePointCalculator expects.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write as ase_write
from ase.stress import full_3x3_to_voigt_6_stress
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Poscar

from matsearch.candidate import Candidate
from matsearch.errors import ExportError
from matsearch.spec import Objective
from matsearch.structures.symmetry import SPGLIB_ERRORS, SYMPREC_ANGSTROM, spglib_output_logged

EXTXYZ_NAME = "candidates.extxyz"
CSV_NAME = "candidates.csv"
JSON_NAME = "candidates.json"
VASP_DIR = "vasp"
# What an export writes (also older exports' per-candidate JSON); `--force` removes only these.
_EXPORT_FILE = re.compile(r"^\d{4,}_[A-Za-z0-9]+(_P1)?\.(cif|POSCAR|json)$")


class ExportFormat(StrEnum):
    """Files an export can write: structures (cif, poscar, extxyz) and the manifest (csv, json)."""

    CIF = "cif"
    POSCAR = "poscar"
    EXTXYZ = "extxyz"
    CSV = "csv"
    JSON = "json"


class ExportWarning(UserWarning):
    """Something the exported files lack (e.g. forces of runs stored before they were kept)."""


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


def prepare_export_dir(out_dir: Path, *, force: bool) -> None:
    """Make sure `out_dir` can take an export: absent or empty, or, with `force`, holding only an
    earlier export's files, which are removed. ExportError otherwise."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"export folder '{out_dir}' is a file; choose a folder with --out")
    entries = sorted(out_dir.iterdir())
    if not entries:
        return
    if not force:
        raise ExportError(
            f"export folder '{out_dir}' is not empty; choose another folder with --out, or add --force "
            "to replace the export in it"
        )
    foreign = [e for e in entries if not _is_export_output(e)]
    if foreign:
        raise ExportError(
            f"export folder '{out_dir}' holds '{foreign[0].name}', which matsearch export did not "
            "write, so --force leaves it alone; choose another folder with --out"
        )
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _is_export_output(path: Path) -> bool:
    if path.is_dir():
        return path.name == VASP_DIR and not path.is_symlink()
    return path.name in (EXTXYZ_NAME, CSV_NAME, JSON_NAME) or _EXPORT_FILE.match(path.name) is not None


def write_cif(structure: Structure, path: Path, *, symmetrise: bool = True) -> None:
    """CIF of `structure`: symmetrised with its space group (refined conventional cell, tolerance
    SYMPREC_ANGSTROM Å), or the cell as it is (P1) with `symmetrise=False`."""
    with spglib_output_logged():
        CifWriter(structure, symprec=SYMPREC_ANGSTROM if symmetrise else None).write_file(path)


def write_poscar(structure: Structure, path: Path, comment: str) -> None:
    """POSCAR with the sites sorted by species (pymatgen's order: by electronegativity)."""
    Poscar(structure.get_sorted_structure(), comment=comment).write_file(path)


def write_extxyz(candidates: Sequence[Candidate], path: Path) -> int:
    """One frame per candidate with a SinglePointCalculator: energy (eV per cell), and where the store
    holds them, forces (eV/Å) and stress (eV/Å³, ASE sign). Returns how many frames lack forces."""
    frames, missing = [], 0
    for candidate in candidates:
        structure = candidate.relaxed or candidate.structure
        atoms = AseAtomsAdaptor.get_atoms(structure)
        results: dict[str, object] = {}
        if candidate.energy_per_atom is not None:
            results["energy"] = candidate.energy_per_atom * len(structure)
        if candidate.relaxed is not None and candidate.forces is not None:
            results["forces"] = np.asarray(candidate.forces, dtype=float)
        else:
            missing += 1
        if candidate.relaxed is not None and candidate.stress_gpa is not None:
            stress_ev_per_a3 = np.asarray(candidate.stress_gpa, dtype=float) * units.GPa
            results["stress"] = full_3x3_to_voigt_6_stress(stress_ev_per_a3)
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(
            id=candidate.id,
            formula=candidate.formula,
            known_id_or_new=candidate.known_id or "new",
            energy_per_atom_ev=candidate.energy_per_atom,
            e_above_hull_ev_per_atom=candidate.e_above_hull,
        )
        frames.append(atoms)
    ase_write(path, frames, format="extxyz")
    return missing


def export_candidates(
    candidates: Sequence[Candidate],
    out_dir: Path,
    formats: Sequence[ExportFormat],
    objectives: Sequence[Objective] = (),
    *,
    cif_p1: bool = False,
    force: bool = False,
) -> list[Path]:
    """Write each candidate (relaxed structure, else the proposed one) in each format, plus the
    manifest with every objective in `objectives`; returns the files written.

    `out_dir` must be absent or empty, or with `force` hold only an earlier export (removed first).
    `cif_p1` adds `<stem>_P1.cif`, the cell as relaxed. Emits an ExportWarning when extxyz frames
    lack forces or stress (runs stored before they were kept).
    """
    from matsearch.export_manifest import manifest_rows, write_csv, write_json

    prepare_export_dir(out_dir, force=force)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    files: dict[int, list[str]] = {}
    unsymmetrised: list[int] = []
    for candidate in candidates:
        structure = candidate.relaxed or candidate.structure
        stem = candidate_stem(candidate)
        paths = []
        if ExportFormat.CIF in formats:
            paths.append(out_dir / f"{stem}.cif")
            try:
                write_cif(structure, paths[-1])
            except SPGLIB_ERRORS:  # spglib could not decide the space group (as in space_group())
                write_cif(structure, paths[-1], symmetrise=False)
                unsymmetrised.append(candidate.id)
            if cif_p1:
                paths.append(out_dir / f"{stem}_P1.cif")
                write_cif(structure, paths[-1], symmetrise=False)
        if ExportFormat.POSCAR in formats:
            paths.append(out_dir / f"{stem}.POSCAR")
            write_poscar(structure, paths[-1], f"{stem} (matsearch candidate {candidate.id})")
        files[candidate.id] = [p.name for p in paths]
        written += paths
    if unsymmetrised:
        warnings.warn(
            f"no space group found within {SYMPREC_ANGSTROM} Å for candidates {unsymmetrised}; their "
            "CIFs hold the P1 cell",
            ExportWarning,
            stacklevel=2,
        )
    if ExportFormat.EXTXYZ in formats:
        written.append(out_dir / EXTXYZ_NAME)
        missing = write_extxyz(candidates, written[-1])
        if missing:
            warnings.warn(
                f"{missing} of {len(candidates)} extxyz frames carry no forces or stress: the run "
                "stored none for them (runs made before matsearch kept them); their energy is there",
                ExportWarning,
                stacklevel=2,
            )
    rows = manifest_rows(candidates, objectives, files)
    if ExportFormat.CSV in formats:
        written.append(write_csv(rows, objectives, out_dir / CSV_NAME))
    if ExportFormat.JSON in formats:
        written.append(write_json(rows, objectives, out_dir / JSON_NAME))
    return written
