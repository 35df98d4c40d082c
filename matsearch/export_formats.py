"""Export formats by name (`EXPORT_FORMATS`, one line each, as ASE declares its file formats): the
writer, the file suffix, one file per candidate or one per run, and whether the file carries the
forces and stress the store keeps. The writers' packages (pymatgen, ase, pandas) load only when a
format is written, so the command line reads the names at no cost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matsearch.errors import ExportError
from matsearch.export_job import ExportJob

Writer = Callable[[ExportJob, str], list[Path]]  # (job, the format's suffix) -> files written


@dataclass(frozen=True)
class ExportFormat:
    """One format: `write` writes it for every candidate of a job; `per_candidate` files are named
    <stem><suffix>, others candidates<suffix>; `carries_forces` files hold forces and stress."""

    write: Writer
    suffix: str
    per_candidate: bool
    carries_forces: bool = False


def _cif(job: ExportJob, suffix: str) -> list[Path]:
    from matsearch.export_structures import write_cifs

    return write_cifs(job, suffix)


def _poscar(job: ExportJob, suffix: str) -> list[Path]:
    from matsearch.export_structures import write_poscars

    return write_poscars(job, suffix)


def _extxyz(job: ExportJob, suffix: str) -> list[Path]:
    from matsearch.export_structures import write_extxyz

    return [write_extxyz(job.candidates, job.run_file(suffix))]


def _csv(job: ExportJob, suffix: str) -> list[Path]:
    from matsearch.export_manifest import write_csv

    return [write_csv(job.manifest_rows, job.objectives, job.run_file(suffix))]


def _json(job: ExportJob, suffix: str) -> list[Path]:
    from matsearch.export_manifest import write_json

    return [write_json(job.manifest_rows, job.objectives, job.run_file(suffix))]


# `export --format` name -> its declaration, written in this order (the manifest last: it lists the
# structure files); the CLI's choices are these names
EXPORT_FORMATS: dict[str, ExportFormat] = {
    "cif": ExportFormat(_cif, ".cif", per_candidate=True),
    "poscar": ExportFormat(_poscar, ".POSCAR", per_candidate=True),
    "extxyz": ExportFormat(_extxyz, ".extxyz", per_candidate=False, carries_forces=True),
    "csv": ExportFormat(_csv, ".csv", per_candidate=False),
    "json": ExportFormat(_json, ".json", per_candidate=False),
}


def check_formats(names: Sequence[str]) -> None:
    """ExportError naming the first name that is not a format, with the allowed ones."""
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown:
        raise ExportError(f"unknown export format '{unknown[0]}'; allowed: {', '.join(EXPORT_FORMATS)}")
