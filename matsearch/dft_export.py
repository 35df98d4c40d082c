"""VASP inputs for DFT follow-up of the best candidates (pymatgen MPRelaxSet / MPScanRelaxSet).

Each candidate gets a folder ``<out_dir>/<id>_<formula>/`` with INCAR, KPOINTS (MPRelaxSet;
the r2SCAN set uses KSPACING in the INCAR instead), POSCAR, POTCAR, a CIF and a metadata JSON
(lineage, MLIP energies in eV/atom, scores, input set). VASP pseudopotentials are licensed and
found through pymatgen's ``PMG_VASP_PSP_DIR`` setting; when it is not configured, every other
file is still written, POTCAR is replaced by POTCAR.spec (the POTCAR symbols), and one
`PotcarSkippedWarning` says how to configure it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from pymatgen.core import SETTINGS
from pymatgen.io.vasp.sets import MPRelaxSet, MPScanRelaxSet, VaspInputSet

from matsearch.candidate import Candidate
from matsearch.export import candidate_metadata
from matsearch.export_job import candidate_stem

PSP_SETTING = "PMG_VASP_PSP_DIR"


class VaspInputSetName(StrEnum):
    """VASP input sets: PBE (+U) relaxation as in the Materials Project, or r2SCAN relaxation."""

    MP_RELAX = "MPRelaxSet"
    MP_SCAN_RELAX = "MPScanRelaxSet"


_INPUT_SETS: dict[VaspInputSetName, type[VaspInputSet]] = {
    VaspInputSetName.MP_RELAX: MPRelaxSet,
    VaspInputSetName.MP_SCAN_RELAX: MPScanRelaxSet,
}


class PotcarSkippedWarning(UserWarning):
    """POTCAR files were not written because the VASP pseudopotentials are not configured."""


def potcar_problem() -> str | None:
    """Why POTCARs cannot be written on this machine, or None when PMG_VASP_PSP_DIR is usable."""
    value = SETTINGS.get(PSP_SETTING)
    if not value:
        return f"{PSP_SETTING} is not set"
    if not Path(value).expanduser().is_dir():
        return f"{PSP_SETTING} is '{value}', which is not a folder"
    return None


def _skipped_message(problem: str) -> str:
    return (
        f"POTCAR files were not written because {problem}; each folder has a POTCAR.spec listing "
        "the pseudopotentials to use. To write POTCARs, unpack the VASP pseudopotentials and run "
        "`pmg config -p <unpacked_dir> <pmg_potcar_dir>` then "
        f"`pmg config --add {PSP_SETTING} <pmg_potcar_dir>` (or set {PSP_SETTING} in the "
        "environment), and export again."
    )


def _input_set(name: str) -> VaspInputSetName:
    try:
        return VaspInputSetName(name)
    except ValueError:
        allowed = ", ".join(v.value for v in VaspInputSetName)
        raise ValueError(f"unknown VASP input set '{name}'; allowed: {allowed}") from None


def export_vasp(candidates: Sequence[Candidate], out_dir: Path, input_set: str = "MPRelaxSet") -> list[Path]:
    """Write a VASP input folder per candidate (relaxed structure, else the proposed one).

    Returns the files written. Emits one PotcarSkippedWarning when POTCARs cannot be written.
    """
    set_name = _input_set(input_set)
    set_class = _INPUT_SETS[set_name]
    out_dir = Path(out_dir)
    problem = potcar_problem()
    written: list[Path] = []
    for candidate in candidates:
        structure = candidate.relaxed or candidate.structure
        if structure is None or candidate.id is None:
            raise ValueError(f"candidate {candidate.id} has no structure or no id; export stored candidates")
        folder = out_dir / candidate_stem(candidate)
        vasp_set = set_class(structure)
        vasp_set.write_input(str(folder), potcar_spec=problem is not None)
        cif = folder / f"{candidate_stem(candidate)}.cif"
        structure.to(filename=str(cif), fmt="cif")
        meta = candidate_metadata(candidate) | {
            "vasp_input_set": set_name.value,
            "potcar_symbols": list(vasp_set.potcar_symbols),
            "potcar_written": problem is None,
        }
        meta_path = folder / f"{candidate_stem(candidate)}.json"
        meta_path.write_text(json.dumps(meta, indent=2))
        potcar = "POTCAR" if problem is None else "POTCAR.spec"
        kpoints = [] if vasp_set.kpoints is None else ["KPOINTS"]  # r2SCAN: KSPACING in INCAR
        inputs = [folder / name for name in ("INCAR", *kpoints, "POSCAR", potcar)]
        written.extend([*inputs, cif, meta_path])
    if problem is not None and candidates:
        message = _skipped_message(problem)
        warnings.warn(message, PotcarSkippedWarning, stacklevel=2)
    return written
