"""Known vs new, duplicates after relaxation and artefact flags on real structures."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Flag, Novelty, Status
from matsearch.scoring.discovery import DiscoveryMarker, artefact_flags, is_discovery
from matsearch.structures.dedup import PYMATGEN_DEFAULTS
from matsearch.structures.known import KnownMaterials


def _rocksalt_nacl(a: float = 5.69) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])


def _cscl_nacl() -> Structure:
    return Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _nacl2() -> Structure:
    return Structure(Lattice.cubic(4.2), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5]])


def _molecular(symbol: str, bond: float, a: float = 5.6) -> Structure:
    """Four diatomic molecules in a cubic cell (a Pa-3-like packing of N2, O2 or F2)."""
    centres = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    coords = []
    for c in centres:
        coords += [c, [c[0] + bond / a, c[1], c[2]]]
    return Structure(Lattice.cubic(a), [symbol] * 8, coords)


def _scored(
    cid: int, relaxed: Structure, e_hull: float = -0.02, operator: str = "strain", **extra
) -> Candidate:
    return Candidate(
        id=cid,
        generation=1,
        origin="builtin",
        operator=operator,
        structure=relaxed,
        relaxed=relaxed,
        status=Status.SCORED,
        e_above_hull=e_hull,
        extra=dict(extra),
    )


@pytest.fixture(scope="module")
def known() -> KnownMaterials:
    return KnownMaterials.load()


@pytest.mark.parametrize(("symbol", "bond"), [("N", 1.10), ("O", 1.21), ("F", 1.42)])
def test_molecular_crystals_are_flagged_and_never_discoveries(known, symbol: str, bond: float) -> None:
    candidate = _scored(1, _molecular(symbol, bond), e_hull=-0.11)
    DiscoveryMarker(known, PYMATGEN_DEFAULTS).mark(candidate)
    assert candidate.flags == [Flag.ELEMENTAL, Flag.MOLECULAR]
    assert not is_discovery(candidate, 0.0)
    assert not is_discovery(candidate, 0.0, admit=["molecular"])  # still elemental
    assert is_discovery(candidate, 0.0, admit=["molecular", "elemental"]) == (
        candidate.novelty != Novelty.KNOWN
    )


def test_ionic_and_metallic_crystals_carry_no_flag() -> None:
    assert artefact_flags(_rocksalt_nacl()) == []
    bcc_li = Structure(Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert artefact_flags(bcc_li) == [Flag.ELEMENTAL]


def test_known_new_structure_new_composition_and_seeds(known: KnownMaterials) -> None:
    marker = DiscoveryMarker(known, PYMATGEN_DEFAULTS)
    rocksalt, cscl = _scored(1, _rocksalt_nacl(5.8)), _scored(2, _cscl_nacl())
    new_formula = _scored(3, _nacl2())
    seed = _scored(4, _rocksalt_nacl(4.0) * (2, 1, 1), operator="seed", material_id="mp-22862")
    for c in (rocksalt, cscl, new_formula):
        marker.mark(c)
    assert (rocksalt.novelty, rocksalt.known_id) == (Novelty.KNOWN, "mp-22862")
    assert (cscl.novelty, cscl.known_id) == (Novelty.NEW_STRUCTURE, None)
    assert is_discovery(cscl, 0.0) and not is_discovery(rocksalt, 0.0)
    assert new_formula.novelty == Novelty.NEW_COMPOSITION  # no NaCl2 in MP-20
    marker.mark(seed)  # a seed is its known material, whatever its relaxed cell looks like
    assert (seed.novelty, seed.known_id) == (Novelty.KNOWN, "mp-22862")


def test_a_structure_relaxed_into_an_earlier_one_is_a_duplicate_of_it(known: KnownMaterials) -> None:
    marker = DiscoveryMarker(known, PYMATGEN_DEFAULTS)
    first, again = _scored(5, _cscl_nacl()), _scored(9, _cscl_nacl() * (1, 1, 2))
    other = _scored(7, _rocksalt_nacl())
    for c in (first, other, again):
        marker.mark(c)
    assert first.status == other.status == Status.SCORED
    assert again.status == Status.DUPLICATE and again.duplicate_of == 5
    assert again.reason == "relaxed into the structure of candidate 5"
    assert not is_discovery(again, 0.0)
    resumed = DiscoveryMarker(known, PYMATGEN_DEFAULTS)
    resumed.remember([other, first])
    replay = _scored(9, _cscl_nacl() * (1, 1, 2))
    resumed.mark(replay)
    assert replay.duplicate_of == 5


def test_a_candidate_scored_but_not_marked_before_a_kill_is_not_its_own_duplicate(
    known: KnownMaterials,
) -> None:
    """kill -9 between scoring and marking: on resume the marker is rebuilt from the store, which
    holds the candidate scored but unmarked; marking it then must not find itself."""
    marked, unmarked = _scored(5, _rocksalt_nacl()), _scored(9, _cscl_nacl())
    DiscoveryMarker(known, PYMATGEN_DEFAULTS).mark(marked)
    resumed = DiscoveryMarker(known, PYMATGEN_DEFAULTS)
    resumed.remember([marked, unmarked])
    resumed.mark(unmarked)
    assert unmarked.status == Status.SCORED and unmarked.duplicate_of is None


def test_a_composition_the_hull_lists_is_never_a_new_composition(known: KnownMaterials) -> None:
    """The quickstart's KF: the shipped hull lists it (mp-463), the shipped index has no KF
    structure. Rock-salt KF is a new structure whose hull entry is named; NaCl2 stays new."""
    from matsearch.display import known_label
    from matsearch.scoring.hull import HullReference

    assert not known.rows("KF")
    marker = DiscoveryMarker(known, PYMATGEN_DEFAULTS, HullReference.named("mp20-subset"))
    kf = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.35), ["K", "F"], [[0, 0, 0], [0.5] * 3])
    rocksalt_kf, nacl2 = _scored(1, kf), _scored(2, _nacl2())
    marker.mark(rocksalt_kf)
    marker.mark(nacl2)
    assert rocksalt_kf.novelty == Novelty.NEW_STRUCTURE and rocksalt_kf.extra["hull_entry"] == "mp-463"
    label = known_label(None, rocksalt_kf.novelty, [], rocksalt_kf.extra["hull_entry"])
    assert label == "new structure (hull lists mp-463; not in the known index)"
    assert nacl2.novelty == Novelty.NEW_COMPOSITION and "hull_entry" not in nacl2.extra


def test_minimum_distance_bonds_and_dimensionality_are_pymatgens(known: KnownMaterials) -> None:
    """The vectorised bonds are MinimumDistanceNN's graph (same edges), and the bond walk calls a
    structure 0-dimensional exactly when Larsen's algorithm on that graph does: molecular crystals,
    a chain, a layer and 60 MP-20 crystals."""
    import warnings

    import numpy as np
    from pymatgen.analysis.dimensionality import get_dimensionality_larsen
    from pymatgen.analysis.local_env import MinimumDistanceNN

    from matsearch.scoring.discovery import is_zero_dimensional, minimum_distance_bonds

    rows = np.random.default_rng(1).choice(len(known), 60, replace=False)
    chain = Structure(Lattice.orthorhombic(2.5, 8, 8), ["C"], [[0, 0, 0]])
    layer = Structure(Lattice.orthorhombic(2.5, 2.5, 9), ["C"], [[0, 0, 0]])
    lone_molecule = Structure(Lattice.cubic(6), ["N", "N"], [[0, 0, 0], [0.18, 0, 0]])
    structures = [_molecular("N", 1.10), lone_molecule, chain, layer, _rocksalt_nacl()]
    structures += [known.structure(int(r)) for r in rows]
    dimensions = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for structure in structures:
            centres, neighbours, images = minimum_distance_bonds(structure)
            theirs = MinimumDistanceNN().get_bonded_structure(structure)
            ours = zip(centres.tolist(), neighbours.tolist(), images, strict=True)
            edges = theirs.graph.edges(data=True)
            assert {_bond(i, j, t) for i, j, t in ours} == {
                _bond(i, j, np.array(d["to_jimage"])) for i, j, d in edges
            }
            dimensions.append(get_dimensionality_larsen(theirs))
            assert is_zero_dimensional(structure) == (dimensions[-1] == 0)
    assert dimensions[:4] == [0, 0, 1, 2]


def _bond(i: int, j: int, image) -> tuple[int, int, tuple[int, ...]]:
    """A bond as (lower site, higher site, image of the higher one); a bond of an atom to its own
    image in either direction is one bond."""
    if i > j:
        i, j, image = j, i, -image
    shift = tuple(int(x) for x in image)
    return (i, j, max(shift, tuple(-x for x in shift)) if i == j else shift)
