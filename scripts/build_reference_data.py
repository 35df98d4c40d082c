"""Rebuild the compact reference data shipped in matsearch/data/reference/ from the data mirror.

    MATSEARCH_DATA_DIR=../shared/data python scripts/build_reference_data.py

Writes the hull table, the elemental references and the known-materials index, then prints each
file's sha256 for the registry (matsearch/data/registry.py). Sources and licences: the NOTICE file
beside the data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
from pymatgen.entries.computed_entries import ComputedEntry

from matsearch import data
from matsearch.scoring.hull import HullReference
from matsearch.structures.known import SHIPPED_FILE, write_compact

OUT = Path(__file__).resolve().parents[1] / "matsearch" / "data" / "reference"
CSV_KW: dict[str, object] = {"keep_default_na": False, "na_values": [""]}


def build_hull(mirror: Path) -> Path:
    """formula, material_id, formation energy and published e_above_hull (eV/atom) of MP-20 + MPTS-52."""
    frame = pd.read_csv(mirror / "hull" / "mp_formation_energies.csv.gz", **CSV_KW)
    columns = ["material_id", "formula", "formation_energy_per_atom", "e_above_hull_published"]
    frame = frame[columns].sort_values("material_id", kind="stable")
    path = OUT / data.get_dataset("mp-formation-energies").relpath
    frame.to_csv(path, index=False, float_format="%.6f", compression={"method": "gzip", "mtime": 0})
    return path


def build_elemental_refs(mirror: Path) -> Path:
    """Energy per atom (eV/atom) of each element's MP 2023-02-07 reference entry."""
    with gzip.open(mirror / "hull" / "mp_elemental_reference_entries_2023-02-07.json.gz", "rt") as fh:
        raw = json.load(fh)
    refs = {symbol: ComputedEntry.from_dict(d).energy_per_atom for symbol, d in sorted(raw.items())}
    path = OUT / data.get_dataset(data.ELEMENTAL_REFERENCES).relpath
    path.write_text(json.dumps(refs, indent=0, sort_keys=True) + "\n")
    return path


def build_known(mirror: Path) -> Path:
    """Every MP-20 structure of the mirror as a compact known-materials index, each with its
    energy above the shipped hull (eV/atom), computed from its DFT formation energy."""
    table = pd.read_csv(mirror / "mp20" / "mp20_structures.csv.gz", **CSV_KW)
    table = table[table["cif"].notna()]
    hull = HullReference.from_registry("mp20-subset")
    e_above_hull = {
        mid: hull.evaluate_formation(formula, e_form).e_above_hull
        for mid, formula, e_form in zip(
            table["material_id"], table["reduced_formula"], table["formation_energy_per_atom"], strict=True
        )
    }
    path = OUT / SHIPPED_FILE
    n = write_compact(table, e_above_hull, path)
    print(f"{n} known structures", file=sys.stderr)
    return path


def main() -> None:
    mirror = data.data_dir()
    if mirror is None:
        sys.exit("set MATSEARCH_DATA_DIR to the data mirror (e.g. ../shared/data)")
    for path in (build_hull(mirror), build_elemental_refs(mirror), build_known(mirror)):  # in this order
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB sha256:{digest}")


if __name__ == "__main__":
    main()
