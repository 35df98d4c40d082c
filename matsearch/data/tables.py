"""Parsed reference tables: MP-20, hull formation energies, user hull files, elemental references.

Energies are eV/atom. Tables are read once per process (cached by path).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pymatgen.core import Structure

from matsearch.data.registry import (
    CSV_OPTIONS,
    ELEMENTAL_REFERENCES,
    HULL_REFERENCES,
    MP20_SPLITS,
    dataset_path,
)
from matsearch.errors import DataError


@functools.lru_cache(maxsize=8)
def _read_csv(path: str) -> pd.DataFrame:
    return pd.read_csv(path, **CSV_OPTIONS)


def load_mp20(split: str | None = None) -> pd.DataFrame:
    """MP-20 as a DataFrame (columns MP20_COLUMNS; `cif` is missing for some train ids).

    `split` is "train", "val", "test" or None for every row (including ids without a split).
    Formation energies and e_above_hull are eV/atom, band gaps eV.
    """
    if split is not None and split not in MP20_SPLITS:
        raise DataError(f"Unknown MP-20 split '{split}'; allowed: {', '.join(MP20_SPLITS)} or None.")
    frame = _read_csv(str(dataset_path("mp20")))
    if split is not None:
        frame = frame[frame["split"] == split]
    return frame.copy()


def load_formation_energies(reference: str = "mp20-subset") -> pd.DataFrame:
    """DFT formation energies of hull reference `reference` (see HULL_REFERENCES).

    Columns: material_id, formula, formation_energy_per_atom (eV/atom) and, where published,
    e_above_hull_published (eV/atom).
    """
    if reference not in HULL_REFERENCES:
        raise DataError(
            f"Unknown hull reference '{reference}'; allowed: {', '.join(HULL_REFERENCES)} "
            "or a CSV/JSON file of formation energies."
        )
    path = dataset_path(HULL_REFERENCES[reference])
    frame = _read_csv(str(path)).rename(columns={"energy_above_hull": "e_above_hull_published"})
    return check_hull_table(frame, path)


def load_hull_entries(path: str | Path) -> pd.DataFrame:
    """A user's own hull entries: a CSV with columns formula, formation_energy_per_atom (eV/atom),
    or a JSON list of objects with those keys. Other columns (e.g. material_id) are kept."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"Hull entries file {path} does not exist; give a CSV or JSON file path.")
    name = path.name.lower()
    try:
        if name.endswith((".json", ".json.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as fh:
                records = json.load(fh)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise DataError(
                    f"Hull entries file {path} must hold a JSON list of objects with keys "
                    "formula and formation_energy_per_atom."
                )
            frame = pd.DataFrame.from_records(records)
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path, **CSV_OPTIONS)
        else:
            raise DataError(f"Hull entries file {path} must end in .csv, .csv.gz, .json or .json.gz.")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Hull entries file {path} cannot be read ({exc}).") from exc
    return check_hull_table(frame, path)


def check_hull_table(frame: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Validated copy of a hull table: formula (str) and formation_energy_per_atom (eV/atom, float)
    required; material_id and e_above_hull_published kept when present. `path` names the source
    in error messages."""
    missing = [c for c in ("formula", "formation_energy_per_atom") if c not in frame.columns]
    if missing:
        raise DataError(
            f"Hull entries in {path} lack column(s) {', '.join(missing)}; they need formula and "
            "formation_energy_per_atom (eV/atom)."
        )
    energies = pd.to_numeric(frame["formation_energy_per_atom"], errors="coerce")
    formulas = frame["formula"]
    bad = ~(energies.notna() & formulas.map(lambda f: isinstance(f, str) and bool(f.strip())))
    if bad.any():
        row = frame.index[bad.to_numpy()][0]
        raise DataError(
            f"Hull entries in {path} row {row} has formula {formulas[row]!r} and "
            f"formation_energy_per_atom {frame['formation_energy_per_atom'][row]!r}; both must be "
            "given (a formula and a number in eV/atom)."
        )
    wanted = ("material_id", "formula", "formation_energy_per_atom", "e_above_hull_published")
    keep = [c for c in wanted if c in frame.columns]
    out = frame[keep].copy()
    out["formation_energy_per_atom"] = energies.astype(float)
    return out


def load_elemental_references(dataset: str = ELEMENTAL_REFERENCES) -> dict[str, float]:
    """Energy per atom (eV/atom) of each element's reference phase, e.g. {"O": -4.95, ...}."""
    return dict(_elemental_references(str(dataset_path(dataset))))


ELEMENTAL_STRUCTURES = "matcalc-mp-pbe-element-refs"


def load_elemental_reference_structures(
    elements: Iterable[str], dataset: str = ELEMENTAL_STRUCTURES
) -> dict[str, list[Structure]]:
    """Known polymorphs of each element (MP PBE reference structures), for MLIP-computed μ_i."""
    raw = _elemental_structure_dicts(str(dataset_path(dataset)))
    missing = sorted(set(elements) - set(raw))
    if missing:
        raise DataError(
            f"Dataset '{dataset}' has no reference structures for {', '.join(missing)}; "
            "use reference.elemental: dft for these elements."
        )
    return {el: [Structure.from_dict(d) for d in raw[el]["structure"]] for el in elements}


@functools.lru_cache(maxsize=2)
def _elemental_structure_dicts(path: str) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=4)
def _elemental_references(path: str) -> dict[str, float]:
    try:
        with open(path, encoding="utf-8") as fh:
            refs = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DataError(f"Elemental references {path} cannot be read ({exc}).") from exc
    if not isinstance(refs, dict) or not all(isinstance(v, float) for v in refs.values()):
        raise DataError(f"Elemental references {path} must map element symbols to eV/atom numbers.")
    return refs


_ELEMENT = re.compile(r"[A-Z][a-z]?")


def formula_elements(formula: str) -> frozenset[str]:
    """Element symbols named in a formula string such as "Nd(Al2Cu)4" (no validation)."""
    return frozenset(_ELEMENT.findall(formula))
