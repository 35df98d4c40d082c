"""Ingest VASP results into a run: match each to its candidate, score it, store it next to the MLIP values.

Matching: the export metadata (``<id>_<formula>.json`` that ``matsearch export --vasp`` writes into
each calculation folder), or else the folder's name ``<id>_<formula>``, names the candidate;
without them, pymatgen's StructureMatcher compares the DFT initial structure, then the final one,
with the run's relaxed candidates of the same reduced formula. Each file is read, checked and
scored on its own; a file that fails (truncated, unconverged, no candidate, other elements) gets a
one-line message and leaves the store as it was. All the results that passed are written in one
transaction; a file already ingested (same bytes) changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher

from matsearch.candidate import Candidate, Status
from matsearch.dft.read import DftCalculation, find_outputs, read_calculation
from matsearch.dft.scores import DftScores, score_calculation
from matsearch.errors import DftInputError
from matsearch.scoring.hull import HullReference
from matsearch.spec import RunSpec
from matsearch.store import RunStore
from matsearch.structures.codec import structure_to_json

_EXPORT_FOLDER = re.compile(r"(\d{4,})_[A-Z][A-Za-z0-9]*")  # export_vasp's <id>_<formula>


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one file: "ingested", "unchanged" (already in the run) or "error"."""

    path: Path
    status: str
    message: str
    candidate_id: int | None = None


def ingest(run_dir: Path, paths: Sequence[Path], spec: RunSpec) -> list[IngestOutcome]:
    """Ingest the VASP outputs found under `paths` into the run in `run_dir` (see module docstring).
    Raises DftInputError when a named path does not exist or holds no VASP output."""
    files = find_outputs([Path(p) for p in paths])
    if not files:
        raise DftInputError(f"no vasprun.xml or OUTCAR found under {', '.join(map(str, paths))}")
    hull = HullReference.named(spec.reference.hull)
    allowed = set(spec.chemistry.allowed_elements)
    with RunStore.open(Path(run_dir)) as store:
        scored = store.candidates(status=Status.SCORED)
        seen = store.dft_digests()
        outcomes, rows = [], []
        for path in files:
            try:
                calc = read_calculation(path)
                if calc.digest in seen:
                    outcomes.append(IngestOutcome(path, "unchanged", "already ingested; nothing changed"))
                    continue
                _check_elements(calc, allowed)
                candidate, matched_by = match_candidate(calc, scored)
                scores = score_calculation(calc, hull)
            except DftInputError as exc:
                outcomes.append(IngestOutcome(path, "error", str(exc)))
                continue
            seen.add(calc.digest)
            rows.append(_row(calc, candidate, matched_by, scores))
            outcomes.append(
                IngestOutcome(path, "ingested", _describe(candidate, matched_by, scores), candidate.id)
            )
        store.add_dft_results(rows)
    return outcomes


def _check_elements(calc: DftCalculation, allowed: set[str]) -> None:
    present = {el.symbol for el in calc.final.structure.composition.elements}
    if not present <= allowed:
        other = ", ".join(sorted(present - allowed))
        raise DftInputError(
            f"'{calc.path}' contains {other}, outside the run's chemistry ({', '.join(sorted(allowed))})"
        )


def match_candidate(calc: DftCalculation, scored: Sequence[Candidate]) -> tuple[Candidate, str]:
    """The candidate `calc` was computed for and how it was found ("manifest id", "export folder
    name", "initial structure", "final structure"); DftInputError when none."""
    formula = calc.final.structure.composition.reduced_formula
    by_id = {c.id: c for c in scored}
    named = _manifest_id(calc.path.parent)
    if named is not None:
        manifest_id, how = named
        candidate = by_id.get(manifest_id)
        if candidate is None:
            raise DftInputError(
                f"'{calc.path}': export metadata names candidate {manifest_id}, "
                "which is not a scored candidate of this run"
            )
        if candidate.formula != formula:
            raise DftInputError(
                f"'{calc.path}' is {formula} but its export metadata names candidate {manifest_id} "
                f"({candidate.formula})"
            )
        return candidate, how
    same = [c for c in scored if c.formula == formula and c.relaxed is not None]
    matcher = StructureMatcher()
    for label, structure in (("initial structure", calc.initial), ("final structure", calc.final.structure)):
        for candidate in same:
            if matcher.fit(structure, candidate.relaxed):
                return candidate, label
    raise DftInputError(
        f"'{calc.path}' ({formula}) matches no relaxed candidate of this run "
        f"({len(same)} of that formula); put it in the candidate's export folder to match by id"
    )


def _manifest_id(folder: Path) -> tuple[int, str] | None:
    """The candidate id in the export metadata JSON (``<id>_<formula>.json``) of `folder`, else in
    the folder's own name as `export --vasp` writes it (``0042_NaCl``), if any."""
    for path in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("id"), int) and "vasp_input_set" in meta:
            return meta["id"], "manifest id"
    named = _EXPORT_FOLDER.fullmatch(folder.name)
    return None if named is None else (int(named.group(1)), "export folder name")


def _row(calc: DftCalculation, candidate: Candidate, matched_by: str, scores: DftScores) -> dict:
    final = calc.final
    return {
        "candidate_id": candidate.id,
        "digest": calc.digest,
        "source": str(calc.path.resolve()),
        "matched_by": matched_by,
        "run_type": calc.run_type,
        "hubbards": calc.hubbards,
        "converged": True,
        "comparable": scores.comparable,
        "note": scores.note,
        "energy_per_atom_ev": scores.energy_per_atom_ev,
        "corrected_energy_per_atom_ev": scores.corrected_energy_per_atom_ev,
        "formation_energy_ev_per_atom": scores.formation_energy_ev_per_atom,
        "e_above_hull_ev_per_atom": scores.e_above_hull_ev_per_atom,
        "structure": structure_to_json(final.structure),
        "forces_ev_per_a": None if final.forces is None else final.forces.tolist(),
        "stress_gpa": None if final.stress_gpa is None else final.stress_gpa.tolist(),
        "frames": [
            {
                "structure": structure_to_json(f.structure),
                "energy_ev": f.energy_ev,
                "forces": None if f.forces is None else f.forces.tolist(),
                "stress_gpa": None if f.stress_gpa is None else f.stress_gpa.tolist(),
            }
            for f in calc.frames
        ],
    }


def _describe(candidate: Candidate, matched_by: str, scores: DftScores) -> str:
    text = f"candidate {candidate.id} {candidate.formula} (matched by {matched_by})"
    if not scores.comparable:
        return f"{text}: {scores.note}"
    error = candidate.e_above_hull - scores.e_above_hull_ev_per_atom
    return (
        f"{text}: DFT e_hull {scores.e_above_hull_ev_per_atom:.3f} eV/atom, MLIP − DFT {error:+.3f} eV/atom"
    )
