"""BuiltinProposer on real MP-20 parents: every operator, limits, CSP, determinism, fallbacks."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.errors import SpecError
from matsearch.proposers.base import Proposal, Proposer
from matsearch.proposers.builtin import BuiltinProposer, random_starts
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.random_structures import random_target_structure
from matsearch.structures.validity import check_validity, is_charge_balanced

PARENT_IDS = {
    "mp-22862": 101,  # NaCl, rocksalt
    "mp-758926": 102,  # LiFePO4, 14 atoms
    "mp-149": 103,  # Si, diamond
    "mp-4651": 104,  # SrTiO3, I4/mcm
    "mp-22526": 105,  # LiCoO2, R-3m
}
LIMITS = ChemistryLimits(
    elements=(
        *("Li", "Na", "K", "Rb", "Cs", "Mg", "Sr", "Ba", "Ti", "Zr", "Fe"),
        *("Mn", "Co", "Ni", "Si", "Ge", "Sn", "P", "O", "S", "Cl", "Br"),
    ),
    max_atoms=24,
    max_elements=4,
)


def from_cif(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen notes rounded coordinates in MP CIFs
        return Structure.from_str(text, fmt="cif")


@pytest.fixture(scope="module")
def mp20(mirror_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(mirror_dir / "mp20" / "mp20_structures.csv.gz", keep_default_na=False, na_values=[""])
    return frame[frame["cif"].notna()].set_index("material_id")


def candidate(structure: Structure, id: int) -> Candidate:
    return Candidate(
        id=id,
        generation=0,
        origin="seed",
        operator="seed",
        structure=structure,
        status=Status.SCORED,
    )


@pytest.fixture(scope="module")
def parents(mp20: pd.DataFrame) -> list[Candidate]:
    return [candidate(from_cif(mp20.loc[mid, "cif"]), cid) for mid, cid in PARENT_IDS.items()]


def within_limits(s: Structure, limits: ChemistryLimits) -> bool:
    symbols = {el.symbol for el in s.composition.elements}
    return (
        len(s) <= limits.max_atoms and symbols <= set(limits.elements) and len(symbols) <= limits.max_elements
    )


def same_children(a: list[Proposal], b: list[Proposal]) -> bool:
    for x, y in zip(a, b, strict=True):
        if (x.operator, x.parents, x.extra) != (y.operator, y.parents, y.extra):
            return False
        if x.structure is None or y.structure is None:
            if x.structure is not y.structure:
                return False
            continue
        if not (
            np.array_equal(x.structure.lattice.matrix, y.structure.lattice.matrix)
            and np.array_equal(x.structure.frac_coords, y.structure.frac_coords)
            and x.structure.species == y.structure.species
        ):
            return False
    return True


def test_is_a_proposer() -> None:
    proposer = BuiltinProposer()
    assert isinstance(proposer, Proposer)
    assert proposer.name == "builtin"


# least share of children passing check_validity, per operator, from valid parents
MIN_VALID_SHARE = {"substitution": 1.0, "strain": 1.0, "swap": 0.8, "random": 0.7, "crossover": 0.1}


@pytest.mark.parametrize("operator", sorted(MIN_VALID_SHARE))
def test_each_operator_makes_children_within_limits(operator: str, parents: list[Candidate]) -> None:
    n = 12
    proposals = BuiltinProposer({operator: 1.0}).propose(parents, n, LIMITS, np.random.default_rng(3))
    assert len(proposals) == n
    n_valid = 0
    for p in proposals:
        assert p.structure is not None, p.reason
        assert p.operator == operator and p.origin == "builtin"
        expected_parents = {"random": 0, "crossover": 2}.get(operator, 1)
        assert len(set(p.parents)) == expected_parents
        assert set(p.parents) <= set(PARENT_IDS.values())
        assert within_limits(p.structure, LIMITS)
        n_valid += check_validity(p.structure, LIMITS) is None
    assert n_valid >= MIN_VALID_SHARE[operator] * n


def test_substitution_keeps_charge_and_follows_probabilities() -> None:
    """Na+ in rocksalt may become K+ or Cs+ (same charge), never Ba2+ or Fe; Cl- becomes Br-.
    Hautier's λ table ranks Na+→K+ well above Na+→Cs+."""
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    limits = ChemistryLimits(elements=("Na", "Cl", "K", "Cs", "Ba", "Fe", "Br"), max_elements=3)
    proposals = BuiltinProposer({"substitution": 1.0}).propose(
        [candidate(rocksalt, 1)], 200, limits, np.random.default_rng(0)
    )
    moves = Counter((p.extra["from"], p.extra["to"]) for p in proposals)
    assert set(moves) <= {("Na", "K"), ("Na", "Cs"), ("Cl", "Br")}
    assert moves[("Na", "K")] > 2 * moves[("Na", "Cs")]
    assert all(p.extra["weighting"] == "species" for p in proposals)
    partial = [p for p in proposals if p.extra["n_sites"] < 4]
    assert partial  # some children substitute only part of the sublattice
    for p in proposals:
        assert p.structure is not None
        assert is_charge_balanced(p.structure.composition)
        assert len(p.structure.composition.elements) <= 3


def test_substitution_without_oxidation_guess_uses_elements(parents: list[Candidate]) -> None:
    silicon = parents[2]
    limits = ChemistryLimits(elements=("Si", "Ge", "Sn", "C"))
    proposals = BuiltinProposer({"substitution": 1.0}).propose(
        [silicon], 20, limits, np.random.default_rng(1)
    )
    for p in proposals:
        assert p.structure is not None and p.extra["weighting"] == "element"
        assert p.extra["from"] == "Si" and p.extra["to"] in {"Ge", "Sn", "C"}


def test_csp_children_keep_target_composition(mp20: pd.DataFrame) -> None:
    polymorphs = [
        candidate(from_cif(mp20.loc["mp-22526", "cif"]), 1),  # LiCoO2 R-3m, 4 atoms
        candidate(from_cif(mp20.loc["mp-849273", "cif"]), 2),  # LiCoO2 Imma
    ]
    limits = ChemistryLimits(elements=("Li", "Co", "O", "Ni"), max_atoms=16, target=Composition("LiCoO2"))
    proposals = BuiltinProposer().propose(polymorphs, 40, limits, np.random.default_rng(5))
    operators = Counter(p.operator for p in proposals)
    assert "substitution" not in operators
    assert {"crossover", "random", "strain", "swap"} <= set(operators)
    for p in proposals:
        assert p.structure is not None
        assert p.structure.composition.reduced_formula == "LiCoO2"
        assert len(p.structure) <= 16


def test_csp_target_outside_the_composition_prior_still_gets_children() -> None:
    """Pr2BiO2 (mp-545539, a real crystal) has no ICSD oxidation states summing to 0: the prior
    that screens generated compositions must not screen out every child of a CSP target."""
    limits = ChemistryLimits(elements=("Pr", "Bi", "O"), max_atoms=10, target=Composition("Pr2BiO2"))
    rng = np.random.default_rng(0)
    starts = [p.structure for p in random_starts(limits, 4, rng) if p.structure is not None]
    parents = [candidate(structure, k + 1) for k, structure in enumerate(starts)]
    proposals = BuiltinProposer().propose(parents, 6, limits, rng)
    assert all(p.structure is not None for p in proposals), [p.reason for p in proposals]
    assert {p.structure.composition.reduced_formula for p in proposals} == {"Pr2BiO2"}


def test_same_seed_same_children(parents: list[Candidate]) -> None:
    proposer = BuiltinProposer()
    first = proposer.propose(parents, 12, LIMITS, np.random.default_rng(42))
    again = proposer.propose(parents, 12, LIMITS, np.random.default_rng(42))
    other = proposer.propose(parents, 12, LIMITS, np.random.default_rng(43))
    assert len({p.operator for p in first}) >= 3
    assert same_children(first, again)
    assert not same_children(first, other)


def test_random_structures_reproduce_from_seed() -> None:
    proposer = BuiltinProposer({"random": 1.0})
    first = proposer.propose([], 4, LIMITS, np.random.default_rng(9))
    again = proposer.propose([], 4, LIMITS, np.random.default_rng(9))
    assert same_children(first, again)


def test_sharing_pyxtals_tolerance_matrix_changes_no_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    """random_structure makes one Tol_matrix pyxtal's check_images default (pyxtal builds one per
    call otherwise): the crystals are those pyxtal makes with its own default."""
    from pyxtal import operations

    from matsearch.structures.random_structures import random_structure

    compositions = [Composition(f) for f in ("Mg4O4", "Li2Fe2P2O8", "Sr2Ti2O6", "Si8")]

    def crystals() -> list[Structure | None]:
        return [random_structure(c, np.random.default_rng(i)) for i, c in enumerate(compositions)]

    shared = crystals()
    assert operations.check_images.__defaults__[1] is not None
    monkeypatch.setattr(operations.check_images, "__defaults__", (None, None, None, 1.0))
    own = crystals()
    assert all(s is not None for s in shared)
    for ours, theirs in zip(shared, own, strict=True):
        assert np.array_equal(ours.lattice.matrix, theirs.lattice.matrix)
        assert np.array_equal(ours.frac_coords, theirs.frac_coords)
        assert ours.species == theirs.species


def test_without_parents_falls_back_to_random() -> None:
    limits = ChemistryLimits(elements=("Mg", "O"), max_atoms=12)
    for weights in (None, {"crossover": 1.0}):
        proposals = BuiltinProposer(weights).propose([], 3, limits, np.random.default_rng(0))
        for p in proposals:
            assert p.operator == "random" and p.parents == []
            assert p.structure is not None and within_limits(p.structure, limits)


def test_one_parent_cannot_cross_over(parents: list[Candidate]) -> None:
    proposals = BuiltinProposer({"crossover": 1.0, "strain": 1.0}).propose(
        parents[:1], 6, LIMITS, np.random.default_rng(0)
    )
    assert {p.operator for p in proposals} == {"strain"}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"mutate": 1.0}, "unknown builtin operator.*mutate; choose from crossover"),
        ({"strain": -1.0}, "finite and ≥ 0"),
        ({"strain": 0.0}, "must not all be zero"),
    ],
)
def test_bad_weights_are_rejected(weights: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        BuiltinProposer(weights)


TWO_SYSTEMS = ChemistryLimits(
    elements=("Li", "Na", "K", "Co", "O", "Cl", "Br"),
    max_atoms=16,
    max_elements=3,
    systems=(frozenset({"Li", "Co", "O"}), frozenset({"Na", "K", "Cl", "Br"})),
)


def test_children_stay_inside_the_chemical_systems(parents: list[Candidate]) -> None:
    """Parents NaCl and LiCoO2; no child mixes the two systems (e.g. Li into NaCl, Cl into LiCoO2)."""
    inside = [parents[0], parents[4]]
    proposals = BuiltinProposer().propose(inside, 60, TWO_SYSTEMS, np.random.default_rng(3))
    operators = Counter(p.operator for p in proposals if p.structure is not None)
    assert operators["substitution"] >= 5 and operators["random"] >= 3
    for p in proposals:
        assert p.structure is not None
        elements = {el.symbol for el in p.structure.composition.elements}
        assert TWO_SYSTEMS.allows(elements), (p.operator, elements)


def test_screened_children_are_redrawn_and_counted(parents: list[Candidate]) -> None:
    """A screen that refuses any change of the lattice: strained children never count, swaps do,
    and the redraws are recorded on the children that passed."""
    nacl = parents[0].structure

    def same_lattice(structure: Structure) -> str | None:
        return None if np.allclose(structure.lattice.matrix, nacl.lattice.matrix) else "lattice changed"

    proposer = BuiltinProposer({"strain": 1.0, "swap": 1.0}, screen=same_lattice)
    proposals = proposer.propose(parents[:1], 10, NACL_ONLY, np.random.default_rng(0))
    assert {p.operator for p in proposals} == {"swap"}
    assert sum(p.extra.get("screened", 0) for p in proposals) >= 3


NACL_ONLY = ChemistryLimits(elements=("Na", "Cl"), max_atoms=8)


def test_csp_random_starts_take_every_formula_unit_count() -> None:
    """NaCl within 8 atoms: Z = 1..4 in turn, primitive cells (rock salt's conventional cell is 8)."""
    limits = ChemistryLimits(elements=("Na", "Cl"), max_atoms=8, target=Composition("NaCl"))
    starts = random_starts(limits, 8, np.random.default_rng(0))
    sizes = [len(p.structure) for p in starts if p.structure is not None]
    assert len(sizes) >= 7
    assert set(sizes) == {2, 4, 6, 8}
    for p in starts:
        if p.structure is not None:
            assert p.structure.composition.reduced_formula == "NaCl" and p.operator == "random"
    centred = random_target_structure(Composition("NaCl"), 1, np.random.default_rng(5))
    assert centred is not None and len(centred) == 2
