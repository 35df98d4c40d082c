"""One export as the formats see it: the candidates, the folder, and the file names they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
