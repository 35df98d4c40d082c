"""Known materials: one index of known crystals for seeds, novelty and the known-vs-new mark.

The default index, ``mp20``, ships with the package (``matsearch/data/reference/``): every MP-20
structure that our mirror holds (33,548 crystals of the CDVAE train/val/test split), with its
Materials Project id, split, space group, DFT formation energy and energy above the shipped hull.
``mp20-full`` is the complete CDVAE split (45,231 crystals), read from the data registry (mirror,
cache or download) and converted once into the same compact file under the cache folder.

The compact file is an ``.npz`` whose rows are sorted by reduced formula: per row the id, split,
reduced formula, space-group number, formation energy and e_above_hull (eV/atom), number of sites
and lattice matrix (Å); per site the atomic number and fractional coordinates (float64, as parsed
from the source CIF, so a structure read back equals the CIF's). Building it parses every CIF
(about a minute for MP-20); loading it takes well under a second.

Matching uses pymatgen's StructureMatcher through `DuplicateIndex` with the tolerances given
(default: StructureMatcher's own, ltol=0.2, stol=0.3, angle_tol=5°); a formula's known structures
are reduced and fingerprinted the first time a structure of that formula is looked up.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Lattice, Structure

from matsearch import data
from matsearch.errors import DataError
from matsearch.structures.dedup import PYMATGEN_DEFAULTS, DuplicateIndex, MatchTolerances

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SHIPPED_FILE = "mp20_known_structures.npz"
SHIPPED_DATASET = "mp20-known-structures"  # its registry entry (matsearch/data/registry.py)
KNOWN_INDEXES = {
    "mp20": "MP-20 structures shipped with matsearch (CDVAE split, every crystal our mirror holds)",
    "mp20-full": "the complete CDVAE MP-20 split (data registry 'mp20': mirror, cache or download)",
}
_ROW_ARRAYS = ("material_id", "split", "reduced_formula", "spacegroup", "formation_energy_per_atom",
               "e_above_hull", "n_sites")  # fmt: skip


@dataclass(frozen=True)
class KnownMatch:
    """The known material a structure reproduces."""

    material_id: str
    reduced_formula: str


class KnownMaterials:
    """Known crystals by reduced formula.

    `table` lists them (one row each); `structure(i)` rebuilds row i; `match(structure)` returns
    the known material that `structure` reproduces (StructureMatcher with `tolerances`), or None.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        *,
        name: str,
        version: str,
        tolerances: MatchTolerances = PYMATGEN_DEFAULTS,
    ) -> None:
        self.name = name
        self.version = version  # sha256 prefix of the compact file
        self.tolerances = tolerances
        self._arrays = arrays
        self._site_start = np.concatenate([[0], np.cumsum(arrays["n_sites"])])
        formulas = arrays["reduced_formula"]
        starts = np.flatnonzero(np.r_[True, formulas[1:] != formulas[:-1]])
        stops = np.r_[starts[1:], len(formulas)]
        self._rows_of = {str(formulas[a]): (int(a), int(b)) for a, b in zip(starts, stops, strict=True)}
        self._groups: dict[str, DuplicateIndex] = {}

    @classmethod
    def load(cls, name: str = "mp20", tolerances: MatchTolerances = PYMATGEN_DEFAULTS) -> KnownMaterials:
        """The named index (see KNOWN_INDEXES), matching with `tolerances`."""
        if name not in KNOWN_INDEXES:
            raise DataError(f"Unknown known-materials index '{name}'; allowed: {', '.join(KNOWN_INDEXES)}.")
        path = shipped_path() if name == "mp20" else _full_mp20_index()
        arrays, version = _read_compact(str(path))
        return cls(arrays, name=name, version=version, tolerances=tolerances)

    def __len__(self) -> int:
        return len(self._arrays["material_id"])

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """One row per known material: material_id, split, reduced_formula, spacegroup,
        formation_energy_per_atom and e_above_hull (eV/atom; NaN where unknown), n_sites,
        elements (frozenset of symbols). The row index is the argument of `structure`."""
        frame = pd.DataFrame({key: self._arrays[key] for key in _ROW_ARRAYS})
        frame["elements"] = [data.formula_elements(f) for f in frame["reduced_formula"]]
        return frame

    def structure(self, row: int) -> Structure:
        """The crystal of row `row`; its properties hold material_id and source (the index name)."""
        a, b = self._site_start[row], self._site_start[row + 1]
        structure = Structure(
            Lattice(self._arrays["lattice"][row]),
            self._arrays["numbers"][a:b].tolist(),
            self._arrays["frac_coords"][a:b],
        )
        structure.properties.update(material_id=str(self._arrays["material_id"][row]), source=self.name)
        return structure

    def rows(self, reduced_formula: str) -> range:
        """Row indices of the known materials with this reduced formula (pymatgen convention)."""
        return range(*self._rows_of.get(reduced_formula, (0, 0)))

    def match(self, structure: Structure) -> KnownMatch | None:
        """The known material that `structure` reproduces, or None when it is new."""
        formula = structure.composition.reduced_formula
        rows = self.rows(formula)
        if not rows:
            return None
        if formula not in self._groups:
            group = DuplicateIndex(self.tolerances)
            for row in rows:
                group.add(row, self.structure(row))
            self._groups[formula] = group
        found = self._groups[formula].find(structure)
        if found is None:
            return None
        return KnownMatch(str(self._arrays["material_id"][found]), formula)

    def provenance(self) -> dict[str, object]:
        """Name, version, size and matching tolerances, for a run's metadata."""
        return {
            "name": self.name,
            "version": self.version,
            "n_structures": len(self),
            "format": FORMAT_VERSION,
            "matcher": self.tolerances.describe(),
        }


def shipped_path() -> Path:
    """Path of the compact MP-20 index inside the installed package."""
    return data.dataset_path(SHIPPED_DATASET)


def write_compact(frame: pd.DataFrame, e_above_hull: dict[str, float], path: Path) -> int:
    """Parse the CIFs of `frame` (MP-20 columns, see data.MP20_COLUMNS) into a compact index at
    `path` (atomic write); rows without a CIF are skipped. `e_above_hull` maps material_id to its
    energy above the hull (eV/atom; NaN where absent). Returns the number of structures written."""
    frame = frame[frame["cif"].map(lambda c: isinstance(c, str) and bool(c.strip()))]
    parsed = []
    for record in frame.to_dict("records"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen's CIF rounding notes
            try:
                structure = Structure.from_str(record["cif"], fmt="cif")
            except (ValueError, KeyError, IndexError) as exc:
                logger.warning("%s: CIF cannot be parsed (%s); skipped", record["material_id"], exc)
                continue
        parsed.append((structure.composition.reduced_formula, record["material_id"], record, structure))
    parsed.sort(key=lambda item: item[:2])
    records = [item[2] for item in parsed]
    structures = [item[3] for item in parsed]
    arrays = {
        "format": np.array(FORMAT_VERSION),
        "material_id": np.array([r["material_id"] for r in records], dtype=str),
        "split": np.array([r["split"] if isinstance(r["split"], str) else "" for r in records], dtype=str),
        "reduced_formula": np.array([item[0] for item in parsed], dtype=str),
        "spacegroup": np.array([r["spacegroup.number"] for r in records], dtype=np.int16),
        "formation_energy_per_atom": np.array(
            [r["formation_energy_per_atom"] for r in records], dtype=np.float64
        ),
        "e_above_hull": np.array([e_above_hull.get(r["material_id"], np.nan) for r in records]),
        "n_sites": np.array([len(s) for s in structures], dtype=np.int16),
        "lattice": np.array([s.lattice.matrix for s in structures], dtype=np.float64),
        "numbers": np.concatenate([np.array(s.atomic_numbers, dtype=np.uint8) for s in structures]),
        "frac_coords": np.concatenate([s.frac_coords for s in structures]),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the index is read by every user
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return len(records)


@functools.lru_cache(maxsize=4)
def _read_compact(path: str) -> tuple[dict[str, np.ndarray], str]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"Known-materials index {path} cannot be read ({exc}); reinstall matsearch or delete "
            "the file so that it is rebuilt."
        ) from exc
    if int(arrays.get("format", -1)) != FORMAT_VERSION:
        raise DataError(
            f"Known-materials index {path} has format {arrays.get('format')}, not {FORMAT_VERSION}; "
            "delete it so that it is rebuilt."
        )
    with open(path, "rb") as fh:
        version = hashlib.file_digest(fh, "sha256").hexdigest()[:12]
    return arrays, version


def _full_mp20_index() -> Path:
    """The compact index of the registry's complete MP-20 table, built once into the cache."""
    source = data.dataset_path("mp20")
    with open(source, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:12]
    target = data.cache_dir() / "known" / f"mp20-full-{digest}-v{FORMAT_VERSION}.npz"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("building the known-materials index from %s (about a minute)", source)
        shipped, _ = _read_compact(str(shipped_path()))
        e_above_hull = dict(zip(shipped["material_id"], shipped["e_above_hull"], strict=True))
        n = write_compact(data.load_mp20(), e_above_hull, target)
        logger.info("known-materials index: %d structures in %s", n, target)
    return target
