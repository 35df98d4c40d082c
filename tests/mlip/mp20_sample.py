"""A fixed sample of MP-20 test structures, shared by the parity tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure


def mp20_test_structures(mirror_dir: Path, n: int, seed: int = 0) -> list[Structure]:
    """A fixed sample of ``n`` structures from the MP-20 test split."""
    table = pd.read_csv(mirror_dir / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    rows = table[table["split"] == "test"].sort_values("material_id").sample(n=n, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's notes about rounded CIF coordinates
        return [Structure.from_str(cif, fmt="cif") for cif in rows["cif"]]
