"""Exported structure files: symmetrised CIF (and the P1 cell on request), species-sorted POSCAR,
extended XYZ carrying energy, forces and stress.

Units in the files: extxyz energy eV per cell, forces eV/Å, stress eV/Å³ with ASE's sign (the run
store keeps stress in GPa; it is converted here), as ASE's SinglePointCalculator expects.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
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
from matsearch.errors import ExportWarning
from matsearch.export_job import ExportJob, candidate_stem
from matsearch.structures.symmetry import SPGLIB_ERRORS, SYMPREC_ANGSTROM, spglib_output_logged

P1_TAG = "_P1"  # <stem>_P1.cif: the cell as relaxed, next to the symmetrised <stem>.cif


def write_cif(structure: Structure, path: Path, *, symmetrise: bool = True) -> None:
    """CIF of `structure`: symmetrised with its space group (refined conventional cell, tolerance
    SYMPREC_ANGSTROM Å), or the cell as it is (P1) with `symmetrise=False`."""
    with spglib_output_logged():
        CifWriter(structure, symprec=SYMPREC_ANGSTROM if symmetrise else None).write_file(path)


def write_cifs(job: ExportJob, suffix: str) -> list[Path]:
    """<stem>.cif of each candidate, symmetrised (the P1 cell where spglib finds no space group,
    with one ExportWarning naming them), and with `job.cif_p1` also <stem>_P1.cif."""
    written, unsymmetrised = [], []
    for candidate in job.candidates:
        structure = candidate.relaxed or candidate.structure
        written.append(job.candidate_file(candidate, suffix))
        try:
            write_cif(structure, written[-1])
        except SPGLIB_ERRORS:  # spglib could not decide the space group (as in space_group())
            write_cif(structure, written[-1], symmetrise=False)
            unsymmetrised.append(candidate.id)
        if job.cif_p1:
            written.append(job.candidate_file(candidate, P1_TAG + suffix))
            write_cif(structure, written[-1], symmetrise=False)
    if unsymmetrised:
        warnings.warn(
            f"no space group found within {SYMPREC_ANGSTROM} Å for candidates {unsymmetrised}; their "
            "CIFs hold the P1 cell",
            ExportWarning,
            stacklevel=2,
        )
    return written


def write_poscar(structure: Structure, path: Path, comment: str) -> None:
    """POSCAR with the sites sorted by species (pymatgen's order: by electronegativity)."""
    Poscar(structure.get_sorted_structure(), comment=comment).write_file(path)


def write_poscars(job: ExportJob, suffix: str) -> list[Path]:
    """<stem>.POSCAR of each candidate, its comment line naming the candidate."""
    written = []
    for candidate in job.candidates:
        written.append(job.candidate_file(candidate, suffix))
        stem = candidate_stem(candidate)
        write_poscar(
            candidate.relaxed or candidate.structure,
            written[-1],
            f"{stem} (matsearch candidate {candidate.id})",
        )
    return written


def lacks_forces(candidate: Candidate) -> bool:
    """True when the store holds no forces at the relaxed structure (runs stored before they were kept)."""
    return candidate.relaxed is None or candidate.forces is None


def write_extxyz(candidates: Sequence[Candidate], path: Path) -> Path:
    """One frame per candidate with a SinglePointCalculator: energy (eV per cell), and where the store
    holds them, forces (eV/Å) and stress (eV/Å³, ASE sign)."""
    frames = []
    for candidate in candidates:
        structure = candidate.relaxed or candidate.structure
        atoms = AseAtomsAdaptor.get_atoms(structure)
        results: dict[str, object] = {}
        if candidate.energy_per_atom is not None:
            results["energy"] = candidate.energy_per_atom * len(structure)
        if not lacks_forces(candidate):
            results["forces"] = np.asarray(candidate.forces, dtype=float)
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
    return path
