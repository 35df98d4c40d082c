"""The export manifest: one row per exported candidate, as candidates.csv and candidates.json.

Columns: id, formula, space group (symbol and number, tolerance SYMPREC_ANGSTROM), known_id_or_new
(the known material's id, or "new"), novelty, flags, lineage, convergence, energy per atom (eV/atom),
e_above_hull (eV/atom) and one column per objective of the run, named with its unit
(`objectives.OBJECTIVES`; a custom objective keeps its name, in the unit its function states).
candidates.json adds a `units` block and the objectives' directions, targets and bounds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from matsearch.candidate import Candidate
from matsearch.display import score_unit
from matsearch.objectives import OBJECTIVES
from matsearch.spec import Objective
from matsearch.structures.symmetry import SYMPREC_ANGSTROM, space_group

BASE_UNITS = {
    "energy_per_atom_ev": "eV/atom",
    "e_above_hull_ev_per_atom": "eV/atom",
}


def objective_column(name: str) -> str:
    """The manifest column of objective `name` (a custom objective keeps its name)."""
    builtin = OBJECTIVES.get(name)
    return name if builtin is None else builtin.column


def manifest_rows(
    candidates: Sequence[Candidate], objectives: Sequence[Objective], files: Mapping[int, list[str]]
) -> list[dict[str, Any]]:
    """One row per candidate; `files` names the structure files written for each candidate id."""
    rows = []
    for c in candidates:
        group = space_group(c.relaxed or c.structure)
        row: dict[str, Any] = {
            "id": c.id,
            "formula": c.formula,
            "spacegroup_symbol": None if group is None else group.symbol,
            "spacegroup_number": None if group is None else group.number,
            "known_id_or_new": c.known_id or "new",
            "novelty": None if c.novelty is None else c.novelty.value,
            "flags": [flag.value for flag in c.flags],
            "generation": c.generation,
            "origin": c.origin,
            "operator": c.operator,
            "parents": c.parents,
            "converged": c.converged,
            "n_atoms": c.n_atoms,
            "energy_per_atom_ev": c.energy_per_atom,
            "e_above_hull_ev_per_atom": c.e_above_hull,
        }
        for objective in objectives:
            row.setdefault(objective_column(objective.name), c.scores.get(objective.name))
        row["files"] = files.get(c.id, [])
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], objectives: Sequence[Objective], path: Path) -> Path:
    """candidates.csv: lists joined (parents by spaces, flags and files by semicolons)."""
    columns = [*_columns(objectives), "files"]
    flat = [
        row
        | {
            "parents": " ".join(map(str, row["parents"])),
            "flags": ";".join(row["flags"]),
            "files": ";".join(row["files"]),
        }
        for row in rows
    ]
    pd.DataFrame(flat, columns=columns).to_csv(path, index=False)
    return path


def write_json(rows: list[dict[str, Any]], objectives: Sequence[Objective], path: Path) -> Path:
    """candidates.json: {"units", "objectives", "spacegroup_symprec_a", "candidates"}."""
    units = dict(BASE_UNITS)
    described = []
    for objective in objectives:
        column = objective_column(objective.name)
        units.setdefault(column, score_unit(objective.name))
        described.append(
            {
                "name": objective.name,
                "column": column,
                "unit": score_unit(objective.name),
                "direction": objective.direction,
                "target": objective.target,
                "bounds": objective.bounds,
            }
        )
    document = {
        "units": units,
        "objectives": described,
        "spacegroup_symprec_a": SYMPREC_ANGSTROM,
        "candidates": rows,
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def _columns(objectives: Sequence[Objective]) -> list[str]:
    base = [
        "id",
        "formula",
        "spacegroup_symbol",
        "spacegroup_number",
        "known_id_or_new",
        "novelty",
        "flags",
        "generation",
        "origin",
        "operator",
        "parents",
        "converged",
        "n_atoms",
        "energy_per_atom_ev",
        "e_above_hull_ev_per_atom",
    ]
    extra = [objective_column(o.name) for o in objectives]
    return base + [c for c in dict.fromkeys(extra) if c not in base]
