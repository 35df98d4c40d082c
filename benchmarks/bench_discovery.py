"""Discovery yield on a fixed panel of chemical systems, and validity false rejections of real crystals.

    python benchmarks/bench_discovery.py run --out /tmp/disc       # the searches (any matsearch version)
    python benchmarks/bench_discovery.py analyse --out /tmp/disc   # the table (this version's tools)
    python benchmarks/bench_discovery.py validity                  # false rejections on MP-20 test

`run` uses only `matsearch.Search` and spec keys every version knows, so the same panel can be run
by an older checkout (PYTHONPATH=...) for a before/after comparison. `analyse` reads each run's
SQLite file directly and judges every candidate independently of what the run itself recorded:

- valid: not rejected by the run's checks (validity, chemical systems);
- relaxed: relaxed by the MLIP (scored, or found a duplicate only after relaxing);
- unique: a relaxed structure that no earlier relaxed candidate of the run matches
  (pymatgen StructureMatcher, default tolerances);
- new: unique, and no structure of the shipped known-materials index (33,548 MP-20 crystals)
  matches it, and neither elemental nor molecular (0-dimensional);
- metastable-new: new with e_above_hull ≤ 0.1 eV/atom; S.U.N.: new with e_above_hull ≤ 0.

Counts are printed per 100 relaxations (and per 100 proposals for validity). Seeds (generation-0
known materials) are proposals like any other. `validity` reads the 9,046 MP-20 test crystals from
the data mirror (MATSEARCH_DATA_DIR) and checks each under its own chemistry with the default rules.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path

PANEL = {  # name: (chemical system, kind)
    "Na-Cl": ("Na-Cl", "binary ionic"),
    "Ca-Si": ("Ca-Si", "binary Zintl/intermetallic"),
    "Al-Ni": ("Al-Ni", "binary intermetallic"),
    "Li-Co-O": ("Li-Co-O", "ternary ionic"),
    "K-Zn-F": ("K-Zn-F", "ternary ionic"),
    "Ti-Al-N": ("Ti-Al-N", "ternary mixed (nitrides, MAX phases, intermetallics)"),
}
BUDGET = {"population_size": 8, "children_per_generation": 8, "generations": 3}
METASTABLE = 0.1  # eV/atom


def spec(system: str, out: Path, seed: int) -> dict:
    """The same spec for every version: systems, builtin proposer, e_hull + deformation energy."""
    return {
        "name": system,
        "seed": seed,
        "output": str(out),
        "chemistry": {"systems": [system], "max_atoms": 12, "max_elements": 3},
        **BUDGET,
        "mlip": {"steps": 200},
        "objectives": [
            {"name": "e_above_hull", "direction": "min"},
            {"name": "deformation_energy", "direction": "min", "weight": 0.2},
        ],
    }


def run(out: Path, seed: int) -> None:
    from matsearch import Search

    for system in PANEL:
        started = time.perf_counter()
        Search(spec(system, out, seed)).run()
        print(f"{system}: {time.perf_counter() - started:.0f} s", flush=True)


def analyse(out: Path) -> dict:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from matsearch.scoring.discovery import artefact_flags
    from matsearch.structures.codec import structure_from_json
    from matsearch.structures.known import KnownMaterials

    known = KnownMaterials.load()
    matcher = StructureMatcher()
    table = {}
    for system in PANEL:
        db = sqlite3.connect(out / system / "run.sqlite")
        rows = db.execute(
            "SELECT id, status, relaxed, e_above_hull_ev_per_atom FROM candidates ORDER BY id"
        ).fetchall()
        counts = dict.fromkeys(("proposed", "valid", "relaxed", "unique", "new", "metastable_new", "sun"), 0)
        seen = []
        for _cid, status, relaxed_json, e_hull in rows:
            counts["proposed"] += 1
            counts["valid"] += status != "invalid"
            if relaxed_json is None or e_hull is None:
                continue
            counts["relaxed"] += 1
            relaxed = structure_from_json(relaxed_json)
            formula = relaxed.composition.reduced_formula
            if any(f == formula and matcher.fit(relaxed, s) for f, s in seen):
                continue
            seen.append((formula, relaxed))
            counts["unique"] += 1
            is_known = any(matcher.fit(relaxed, known.structure(r)) for r in known.rows(formula))
            if is_known or artefact_flags(relaxed):
                continue
            counts["new"] += 1
            counts["metastable_new"] += e_hull <= METASTABLE
            counts["sun"] += e_hull <= 0.0
        table[system] = counts
    total = {key: sum(c[key] for c in table.values()) for key in next(iter(table.values()))}
    table["all"] = total
    return table


def print_table(table: dict) -> None:
    print(f"{'system':10s} {'proposed':>8s} {'valid%':>7s} {'relaxed':>7s} | per 100 relaxations: "
          f"{'unique':>6s} {'new':>5s} {'metastable-new':>14s} {'S.U.N.':>6s}")  # fmt: skip
    for system, c in table.items():
        per = 100.0 / c["relaxed"] if c["relaxed"] else 0.0
        print(
            f"{system:10s} {c['proposed']:8d} {100 * c['valid'] / max(c['proposed'], 1):6.1f}% "
            f"{c['relaxed']:7d} | {'':21s}{c['unique'] * per:6.1f} {c['new'] * per:5.1f} "
            f"{c['metastable_new'] * per:14.1f} {c['sun'] * per:6.1f}"
        )


def validity(mirror: Path) -> tuple[int, int, dict]:
    import pandas as pd
    from pymatgen.core import Structure

    from matsearch.structures.validity import check_validity

    try:  # the module moved; keep the benchmark runnable on older checkouts
        from matsearch.structures.limits import ChemistryLimits
    except ImportError:
        from matsearch.proposers.base import ChemistryLimits

    frame = pd.read_csv(mirror / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    frame = frame[(frame["split"] == "test") & frame["cif"].notna()]
    kinds: dict[str, int] = {}
    for cif in frame["cif"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(cif, fmt="cif")
        symbols = tuple(el.symbol for el in structure.composition.elements)
        limits = ChemistryLimits(elements=symbols, max_atoms=len(structure), max_elements=len(symbols))
        reason = check_validity(structure, limits)
        if reason is not None:
            kind = reason.split(":")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    return sum(kinds.values()), len(frame), kinds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["run", "analyse", "validity"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_discovery"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Also write the table here.")
    args = parser.parse_args()
    if args.what == "run":
        run(args.out, args.seed)
        return
    if args.what == "analyse":
        table = analyse(args.out)
        print_table(table)
    else:
        mirror = Path(os.environ.get("MATSEARCH_DATA_DIR", "../shared/data"))
        rejected, total, kinds = validity(mirror)
        print(f"validity false rejections on MP-20 test: {rejected}/{total} = {100 * rejected / total:.2f} %")
        print(f"by kind: {kinds}")
        table = {"rejected": rejected, "total": total, "by_kind": kinds}
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    sys.exit(main())
