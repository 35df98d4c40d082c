"""The known-materials index shipped with the package: contents, exact structures, matching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from matsearch.data import availability, get_dataset
from matsearch.structures.dedup import MatchTolerances
from matsearch.structures.known import KnownMaterials, shipped_path


def _rocksalt_nacl(a: float = 5.69) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])


def _cscl_nacl() -> Structure:
    return Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def known() -> KnownMaterials:
    return KnownMaterials.load()


def test_shipped_index_holds_every_mp20_structure_of_the_mirror(known: KnownMaterials) -> None:
    assert len(known) == 33_548
    assert known.table["split"].value_counts().to_dict() == {"train": 15_455, "val": 9_047, "test": 9_046}
    assert known.table["material_id"].is_unique
    assert shipped_path().stat().st_size < 8e6  # compact: the whole shipped data stays under 15 MB
    assert availability(get_dataset("mp20-known-structures")) == "shipped"
    provenance = known.provenance()
    assert provenance["n_structures"] == 33_548 and len(provenance["version"]) == 12
    assert "StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5.0" in provenance["matcher"]


def test_structures_equal_the_mirror_cifs_exactly(known: KnownMaterials, mirror_dir) -> None:
    """The compact file stores what the CIF parses to, so runs with and without the mirror agree."""
    table = pd.read_csv(mirror_dir / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    cifs = dict(zip(table["material_id"], table["cif"], strict=True))
    rows = np.random.default_rng(0).choice(len(known), size=50, replace=False)
    for row in rows:
        ours = known.structure(int(row))
        theirs = Structure.from_str(cifs[ours.properties["material_id"]], fmt="cif")
        assert ours.species == theirs.species
        np.testing.assert_array_equal(ours.lattice.matrix, theirs.lattice.matrix)
        np.testing.assert_array_equal(ours.frac_coords, theirs.frac_coords)


def test_rocksalt_nacl_is_known_and_cscl_nacl_is_new(known: KnownMaterials) -> None:
    """Rock-salt NaCl is mp-22862; a 4 % larger cell and the primitive cell still match it."""
    assert known.match(_rocksalt_nacl()).material_id == "mp-22862"
    assert known.match(_rocksalt_nacl(5.92)).material_id == "mp-22862"
    assert known.match(_rocksalt_nacl().get_primitive_structure()).material_id == "mp-22862"
    assert known.match(_cscl_nacl()) is None
    assert known.rows("NaCl") and not known.rows("Na7Cl3")


def test_match_agrees_with_pymatgen_structure_matcher(known: KnownMaterials) -> None:
    """Perturbed known crystals: our index says known exactly when StructureMatcher() fits one."""
    rng = np.random.default_rng(1)
    matcher = StructureMatcher()
    for row in rng.choice(len(known), size=40, replace=False):
        query = known.structure(int(row))
        query.perturb(float(rng.uniform(0.0, 0.6)))
        query.scale_lattice(query.volume * float(rng.uniform(0.8, 1.2)))
        rows = known.rows(query.composition.reduced_formula)
        truth = any(matcher.fit(query, known.structure(r)) for r in rows)
        assert (known.match(query) is not None) == truth


def test_tighter_tolerances_are_used() -> None:
    strict = KnownMaterials.load(tolerances=MatchTolerances(ltol=0.01, stol=0.01, angle_tol=0.5))
    sheared = _rocksalt_nacl()
    sheared.apply_strain([0.05, 0, 0])
    assert strict.match(sheared) is None
    assert KnownMaterials.load().match(sheared) is not None


@pytest.mark.slow
def test_full_index_is_built_once_into_the_cache(use_mirror, tmp_path, monkeypatch) -> None:
    """`mp20-full` converts the registry's MP-20 table (here the mirror's) into the cache once."""
    monkeypatch.setenv("MATSEARCH_CACHE_DIR", str(tmp_path))
    full = KnownMaterials.load("mp20-full")
    built = list((tmp_path / "known").glob("mp20-full-*.npz"))
    assert len(built) == 1 and len(full) == 33_548
    stamp = built[0].stat().st_mtime_ns
    assert len(KnownMaterials.load("mp20-full")) == 33_548
    assert built[0].stat().st_mtime_ns == stamp  # not rebuilt
    assert full.match(_rocksalt_nacl()).material_id == "mp-22862"
