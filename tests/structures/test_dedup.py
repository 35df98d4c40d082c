"""DuplicateIndex on thousands of MP-20 crystals (agreement with brute-force StructureMatcher,
transformed copies found, lookup time), and the structure JSON codec round trip."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp

from matsearch.errors import DataError
from matsearch.structures.codec import structure_from_json, structure_to_json
from matsearch.structures.dedup import DuplicateIndex

N_INDEXED = 3000
N_QUERIES = 150


def from_cif(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen notes rounded coordinates in MP CIFs
        return Structure.from_str(text, fmt="cif")


@pytest.fixture(scope="module")
def mp20_structures(mirror_dir: Path) -> list[Structure]:
    frame = pd.read_csv(mirror_dir / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    cifs = frame.loc[frame["cif"].notna(), "cif"].iloc[: N_INDEXED + N_QUERIES]
    return [from_cif(text) for text in cifs]


@pytest.fixture(scope="module")
def index(mp20_structures: list[Structure]) -> DuplicateIndex:
    idx = DuplicateIndex()
    for i, s in enumerate(mp20_structures[:N_INDEXED]):
        idx.add(i, s)
    return idx


def disguise(s: Structure, rng: np.random.Generator) -> Structure:
    """Same crystal: doubled along one axis, shuffled sites, translated, rotated."""
    copy = s * (1, 1, 2)
    order = rng.permutation(len(copy))
    copy = Structure.from_sites([copy[int(i)] for i in order])
    copy.translate_sites(list(range(len(copy))), rng.random(3))
    axis = rng.normal(size=3)
    copy.apply_operation(SymmOp.from_axis_angle_and_translation(axis, float(rng.uniform(0, 360))))
    return copy


def test_index_holds_every_structure(index: DuplicateIndex) -> None:
    assert len(index) == N_INDEXED


def test_finds_disguised_copies(mp20_structures: list[Structure], index: DuplicateIndex) -> None:
    rng = np.random.default_rng(7)
    matcher = StructureMatcher()
    for i in rng.choice(N_INDEXED, size=25, replace=False):
        original = mp20_structures[int(i)]
        found = index.find(disguise(original, rng))
        assert found is not None, original.composition.reduced_formula
        # MP-20 holds a few near-identical polymorphs; any of them is a correct answer
        assert found == i or matcher.fit(mp20_structures[found], original)


def test_agrees_with_brute_force_and_is_fast(mp20_structures: list[Structure], index: DuplicateIndex) -> None:
    """Structures not in the index: the answer matches a default StructureMatcher run over every
    indexed structure of the same formula, and a lookup takes tens of milliseconds at most."""
    matcher = StructureMatcher()
    by_formula: dict[str, list[int]] = {}
    for i, s in enumerate(mp20_structures[:N_INDEXED]):
        by_formula.setdefault(s.composition.reduced_formula, []).append(i)
    seconds = []
    n_found = 0
    for query in mp20_structures[N_INDEXED:]:
        start = time.perf_counter()
        found = index.find(query)
        seconds.append(time.perf_counter() - start)
        same_formula = by_formula.get(query.composition.reduced_formula, [])
        truth = [i for i in same_formula if matcher.fit(query, mp20_structures[i])]
        if truth:
            assert found in truth
            n_found += 1
        else:
            assert found is None
    assert n_found < 0.1 * N_QUERIES  # mostly genuinely new crystals
    assert float(np.mean(seconds)) < 0.03


def test_distinguishes_polymorphs_and_ignores_oxidation_states() -> None:
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    cesium_chloride_type = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    idx = DuplicateIndex()
    idx.add(11, rocksalt)
    assert idx.find(cesium_chloride_type) is None
    idx.add(12, cesium_chloride_type)

    strained = rocksalt.copy()
    strained.apply_strain([0.02, -0.01, 0.0])
    decorated = rocksalt.copy()
    decorated.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    primitive = rocksalt.get_primitive_structure()
    primitive.scale_lattice(primitive.volume * 1.3)  # volumes are scaled before matching
    for copy in (strained, decorated, primitive):
        assert idx.find(copy) == 11
    assert idx.find(cesium_chloride_type * (2, 2, 2)) == 12

    moved = rocksalt.copy()
    moved.translate_sites([0], [0.25, 0.0, 0.0])  # Na off its site by 1.4 Å: another crystal
    assert idx.find(moved) is None


def test_asking_again_finds_what_was_added_since_and_follows_edits() -> None:
    """A structure looked up without a match, asked again after a copy of it was added, is found
    (its earlier misses are remembered, not its answer); several indexes share one structure; a
    structure changed in place after a lookup is looked up as it is now."""
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    cesium_chloride_type = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    query = rocksalt.copy()
    query.apply_strain([0.01, 0.0, -0.01])
    first, second = DuplicateIndex(), DuplicateIndex()
    first.add(1, cesium_chloride_type)
    second.add(5, rocksalt)
    assert first.find(query) is None
    assert second.find(query) == 5
    first.add(2, cesium_chloride_type * (1, 1, 2))  # another CsCl-type entry: still no match
    first.add(3, rocksalt)
    assert first.find(query) == 3
    assert first.find(query) == 3

    query.translate_sites([0], [0.25, 0.0, 0.0])  # now another crystal
    assert first.find(query) is None and second.find(query) is None
    query.translate_sites([0], [-0.25, 0.0, 0.0])
    assert first.find(query) == 3


def test_codec_round_trip_is_exact(mp20_structures: list[Structure]) -> None:
    decorated = mp20_structures[0].copy()
    decorated.add_oxidation_state_by_guess()
    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.25, "Ni": 0.75}], [[0.1, 0.2, 0.3]])
    outside = Structure(Lattice.hexagonal(3.1, 5.0), ["Zn"], [[1.25, -0.5, 0.333333333333]])
    for s in [*mp20_structures[:200], decorated, disordered, outside]:
        text = structure_to_json(s)
        back = structure_from_json(text)
        assert np.array_equal(back.lattice.matrix, s.lattice.matrix)
        assert np.array_equal(back.frac_coords, s.frac_coords)
        assert [site.species for site in back] == [site.species for site in s]
    assert "\n" not in text and " " not in text


def test_codec_rejects_other_text() -> None:
    with pytest.raises(DataError, match="expected keys lattice, species, frac_coords"):
        structure_from_json('{"lattice": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}')
    with pytest.raises(DataError, match="not a structure JSON object"):
        structure_from_json("data_NaCl")


def test_max_fits_bounds_the_search_but_finds_close_copies(
    mp20_structures: list[Structure],
) -> None:
    """With one fit allowed, the most similar entry by fingerprint is the one fitted: a lightly
    strained copy is still found among 400 crystals."""
    idx = DuplicateIndex(max_fits=1)
    for i, s in enumerate(mp20_structures[:400]):
        idx.add(i, s)
    for i in (3, 250, 399):
        copy = mp20_structures[i].copy()
        copy.apply_strain([0.01, 0.0, -0.01])
        assert idx.find(copy) == i
