"""Export formats by name (`EXPORT_FORMATS`, one line each, as ASE declares its file formats): the
writer, the file suffix, one file per candidate or one per run, and whether the file carries the
forces and stress the store keeps. The writers' packages (pymatgen, ase, pandas) load only when a
format is written, so the command line reads the names at no cost."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matsearch.errors import ExportError

if TYPE_CHECKING:
    from matsearch.candidate import Candidate
    from matsearch.spec import Objective

RUN_FILE_STEM = "candidates"  # a per-run format's file is candidates<suffix>


def candidate_stem(candidate: Candidate) -> str:
    """File name stem, e.g. '0042_NaCl'."""
    return f"{candidate.id:04d}_{candidate.formula}"


@dataclass
class ExportJob:
    """One export: the candidates (each written as its relaxed structure, else the proposed one),
    the folder, the run's objectives and ingested DFT views (by candidate id) for the manifest, and
    `cif_p1` (also the cell as relaxed). `files` collects each candidate's structure files."""

    candidates: Sequence[Candidate]
    out_dir: Path
    objectives: Sequence[Objective] = ()
    cif_p1: bool = False
    dft: Mapping[int, dict] | None = None
    files: dict[int, list[str]] = field(default_factory=dict)

    def candidate_file(self, candidate: Candidate, ending: str) -> Path:
        """out_dir/<stem><ending>, listed under `candidate` in the manifest's `files` column."""
        name = candidate_stem(candidate) + ending
        self.files.setdefault(candidate.id, []).append(name)
        return self.out_dir / name

    def run_file(self, suffix: str) -> Path:
        """out_dir/candidates<suffix>: the one file of a per-run format."""
        return self.out_dir / f"{RUN_FILE_STEM}{suffix}"

    @cached_property
    def manifest_rows(self) -> list[dict[str, Any]]:
        """The manifest's rows (computed once for csv and json; the structure files come first)."""
        from matsearch.export_manifest import manifest_rows

        return manifest_rows(self.candidates, self.objectives, self.files, self.dft)


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
