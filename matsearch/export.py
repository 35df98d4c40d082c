"""Export relaxed candidates in the formats the user names (`export_formats.EXPORT_FORMATS`: CIF,
POSCAR, extxyz, the candidates.csv / .json manifest) into a folder that holds nothing else.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from matsearch.candidate import Candidate
from matsearch.errors import ExportError, ExportWarning
from matsearch.export_formats import EXPORT_FORMATS, check_formats
from matsearch.export_job import RUN_FILE_STEM, ExportJob
from matsearch.export_structures import P1_TAG, lacks_forces
from matsearch.spec import Objective

VASP_DIR = "vasp"
_RUN_FILES = {f"{RUN_FILE_STEM}{f.suffix}" for f in EXPORT_FORMATS.values() if not f.per_candidate}
# What an export writes per candidate (also older exports' per-candidate JSON); `--force` removes only these.
_CANDIDATE_SUFFIXES = {f.suffix for f in EXPORT_FORMATS.values() if f.per_candidate} | {".json"}
_CANDIDATE_FILE = re.compile(
    rf"^\d{{4,}}_[A-Za-z0-9]+({P1_TAG})?({'|'.join(map(re.escape, sorted(_CANDIDATE_SUFFIXES)))})$"
)


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
    return path.name in _RUN_FILES or _CANDIDATE_FILE.match(path.name) is not None


def export_candidates(
    candidates: Sequence[Candidate],
    out_dir: Path,
    formats: Sequence[str],
    objectives: Sequence[Objective] = (),
    *,
    cif_p1: bool = False,
    force: bool = False,
    dft: Mapping[int, dict] | None = None,
) -> list[Path]:
    """Write each candidate (relaxed structure, else the proposed one) in each of `formats` (names
    of EXPORT_FORMATS, written in its order); the manifest has every objective in `objectives` and
    each candidate's ingested DFT view (`dft`, by candidate id). Returns the files written.

    `out_dir` must be absent or empty, or with `force` hold only an earlier export (removed first).
    `cif_p1` adds `<stem>_P1.cif`, the cell as relaxed. Emits an ExportWarning when a format that
    carries forces gets candidates without them (runs stored before they were kept).
    """
    check_formats(formats)
    prepare_export_dir(out_dir, force=force)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = ExportJob(candidates, out_dir, objectives, cif_p1=cif_p1, dft=dft)
    written: list[Path] = []
    for name, export_format in EXPORT_FORMATS.items():
        if name not in formats:
            continue
        written += export_format.write(job, export_format.suffix)
        missing = sum(map(lacks_forces, candidates)) if export_format.carries_forces else 0
        if missing:
            warnings.warn(
                f"{missing} of {len(candidates)} {name} frames carry no forces or stress: the run "
                "stored none for them (runs made before matsearch kept them); their energy is there",
                ExportWarning,
                stacklevel=2,
            )
    return written
