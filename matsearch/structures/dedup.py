"""Index of every structure seen in a run, answering "is this a duplicate, and of which candidate?".

Two structures are duplicates when pymatgen's StructureMatcher fits them with its default
tolerances: ltol=0.2 (fractional lattice-length tolerance), stol=0.3 (site tolerance as a fraction
of (V/n)^(1/3)), angle_tol=5 (degrees), volumes scaled to each other, primitive cells compared.
Species are compared as elements (oxidation states and site properties are ignored).

How a lookup stays fast:
1. Each entry is stored once as its Niggli-reduced primitive cell, grouped by (reduced formula,
   number of sites in the primitive cell); only the query's group is searched.
2. Entries whose volume-normalised successive minima (Niggli cell lengths) admit no lattice
   mapping within ltol are dropped; this is exact (it never drops a match).
3. The rest are fitted in order of a partial radial-distribution fingerprint distance, most
   similar first, stopping at the first fit. With `max_fits` set, only that many are fitted, which
   bounds the time but can miss a duplicate whose fingerprint ranks lower.
4. Entries are reduced and fingerprinted lazily: `add` only files the structure under its reduced
   formula, and a formula's entries are prepared the first time a query has that formula (in the
   order they were added, so results are those of an eager index). Rebuilding the index of a long
   run on resume costs a composition per entry, not a reduction (about 13 ms) and a fingerprint.
5. The prepared form of a structure (reduced cell, lattice minima, fingerprint) is cached by its
   content (lattice, coordinates, species; the last PREPARED_CACHE_SIZE structures), so the same
   child looked up in the run's index, in the known materials and added after its check is reduced
   once. An index remembers which of its entries a structure was already fitted against without a
   match (`find` returned None), so asking again fits only the entries added since.
A fit costs about 1-4 ms (up to ~40 ms for layered polytypes with many lattice mappings), so
without `max_fits` a miss costs about that times the number of same-formula, same-size entries.
Measured (2 busy cores) with 600 random pyxtal SiO2 cells (535 of them 9-atom) and 300 queries of
which 141 match: exact, a hit took 26 ms and a miss 600 ms on average; max_fits=64: 21/260 ms,
2 matches missed; max_fits=16: 14/74 ms, 7 missed. On 3,000 MP-20 crystals (few polymorphs per
formula) a lookup takes a few ms.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

GroupKey = tuple[str, int]

_FP_R_MAX = 2.5  # fingerprint range, in units of (V/n)^(1/3)
_FP_BINS = 50
_FP_SIGMA = 0.06  # Gaussian smearing, same units
_FP_GRID = np.linspace(0.0, _FP_R_MAX, _FP_BINS)
PREPARED_CACHE_SIZE = 1024  # structures whose prepared form is kept (a few generations' children)
_MISSES_KEPT = 1024  # per index: structures remembered as fitted without a match

Content = tuple[bytes, bytes, tuple[str, ...]]  # lattice matrix, fractional coordinates, species


class _Rows:
    """Append-only float matrix with amortised O(1) appends."""

    def __init__(self, width: int) -> None:
        self._data = np.empty((8, width))
        self._n = 0

    def append(self, row: np.ndarray) -> None:
        if self._n == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self._n] = row
        self._n += 1

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._n]


class _Prepared:
    """A structure as the index compares it: element-only Niggli-reduced primitive cell, its group
    key, volume-normalised lattice minima and (when first asked) its fingerprint."""

    def __init__(self, content: Content, structure: Structure) -> None:
        self.content = content
        self.reduced = _reduce(structure)
        self.key = _key(self.reduced)
        self.minima = _normalised_minima(self.reduced)

    @functools.cached_property
    def fingerprint(self) -> np.ndarray:
        return _fingerprint(self.reduced)


class _PreparedCache:
    """Prepared forms of the last `size` structures, by content (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Content, _Prepared] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, structure: Structure) -> _Prepared:
        """The prepared form of `structure`, computed and kept when not cached."""
        content = _content(structure)
        with self._lock:
            found = self._entries.get(content)
            if found is not None:
                self._entries.move_to_end(content)
                return found
        prepared = _Prepared(content, structure)
        with self._lock:
            self._entries[content] = prepared
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return prepared


_PREPARED = _PreparedCache(PREPARED_CACHE_SIZE)


class _Group:
    """Entries sharing a reduced formula and primitive-cell size."""

    def __init__(self, fingerprint_width: int) -> None:
        self.ids: list[int] = []
        self.structures: list[Structure] = []
        self.minima = _Rows(3)
        self.fingerprints = _Rows(fingerprint_width)


@dataclass(frozen=True)
class MatchTolerances:
    """StructureMatcher tolerances; the defaults are pymatgen's own.

    ltol: fractional lattice-length tolerance; stol: site tolerance as a fraction of
    (V/n)^(1/3); angle_tol: lattice-angle tolerance in degrees.
    """

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0

    def describe(self) -> str:
        return (
            f"pymatgen StructureMatcher(ltol={self.ltol}, stol={self.stol}, angle_tol={self.angle_tol}, "
            "primitive_cell=True, scale=True), species compared as elements"
        )


PYMATGEN_DEFAULTS = MatchTolerances()


class DuplicateIndex:
    """Structures seen so far, by candidate id; `find` returns the id of a matching one.

    max_fits: at most this many StructureMatcher fits per lookup (most similar entries first);
        None fits every entry that the exact lattice test leaves.
    """

    def __init__(
        self, tolerances: MatchTolerances = PYMATGEN_DEFAULTS, *, max_fits: int | None = None
    ) -> None:
        self._ltol = tolerances.ltol
        self._max_fits = max_fits
        self._matcher = StructureMatcher(
            ltol=tolerances.ltol,
            stol=tolerances.stol,
            angle_tol=tolerances.angle_tol,
            primitive_cell=False,  # entries and queries are reduced once, below
            scale=True,
            attempt_supercell=False,
        )
        self._groups: dict[GroupKey, _Group] = {}
        self._waiting: dict[str, list[tuple[int, Structure]]] = {}  # reduced formula -> not yet prepared
        # content -> how many entries of its group a structure was fitted against without a match
        self._misses: OrderedDict[Content, int] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """Number of structures added; one candidate id may have several (proposed, relaxed)."""
        return self._count

    def add(self, id: int, structure: Structure) -> None:
        """Remember `structure` under candidate `id` (prepared when its formula is first queried)."""
        formula = structure.composition.element_composition.reduced_formula
        self._waiting.setdefault(formula, []).append((id, structure))
        self._count += 1

    def _prepare(self, formula: str) -> None:
        """Reduce and fingerprint the waiting entries of `formula`, in the order they were added."""
        for id, structure in self._waiting.pop(formula, ()):
            prepared = _PREPARED.get(structure)
            group = self._groups.setdefault(prepared.key, _Group(len(prepared.fingerprint)))
            group.ids.append(id)
            group.structures.append(prepared.reduced)
            group.minima.append(prepared.minima)
            group.fingerprints.append(prepared.fingerprint)

    def find(self, structure: Structure) -> int | None:
        """Id of an added structure that matches `structure` (the most similar first), or None."""
        prepared = _PREPARED.get(structure)
        self._prepare(prepared.key[0])
        group = self._groups.get(prepared.key)
        if group is None:
            return None
        found = self._find_in(group, prepared, self._misses.pop(prepared.content, 0))
        if found is None and self._max_fits is None:  # with max_fits, unfitted entries may match
            self._misses[prepared.content] = len(group.ids)
            if len(self._misses) > _MISSES_KEPT:
                self._misses.popitem(last=False)
        return found

    def _find_in(self, group: _Group, prepared: _Prepared, known_misses: int) -> int | None:
        """Id of the first entry of `group` from index `known_misses` on (the earlier ones were
        fitted without a match) that matches the prepared query, or None."""
        reduced = prepared.reduced
        # StructureMatcher.fit(query, entry) searches the query lattice for vectors within a
        # factor (1 + ltol) of the entry's Niggli lengths, which are its successive minima, so
        # the query's k-th minimum must be below (1 + ltol) times the entry's.
        bound = (1.0 + self._ltol) * (1.0 + 1e-3)  # slack for Niggli tolerance
        minima = group.minima.view[known_misses:]
        possible = known_misses + np.flatnonzero(np.all(prepared.minima <= bound * minima, axis=1))
        if possible.size == 0:
            return None
        similarity = group.fingerprints.view[possible] @ prepared.fingerprint
        order = possible[np.argsort(-similarity, kind="stable")][: self._max_fits]
        for index in order:
            if self._matcher.fit(reduced, group.structures[index], skip_structure_reduction=True):
                return group.ids[index]
        return None


def _content(structure: Structure) -> Content:
    """What a structure's prepared form depends on, as a hashable key."""
    return (
        structure.lattice.matrix.tobytes(),
        np.ascontiguousarray(structure.frac_coords).tobytes(),
        tuple(site.species_string for site in structure),
    )


def _reduce(structure: Structure) -> Structure:
    """Element-only, Niggli-reduced primitive cell of `structure`."""
    plain = Structure(
        structure.lattice,
        [site.species.element_composition for site in structure],
        structure.frac_coords,
    )
    primitive = plain.get_reduced_structure().get_primitive_structure()
    return primitive.get_reduced_structure()


def _key(reduced: Structure) -> GroupKey:
    return reduced.composition.reduced_formula, len(reduced)


def _normalised_minima(reduced: Structure) -> np.ndarray:
    """Sorted Niggli lengths divided by V^(1/3): shape-only, volume-free lattice descriptor."""
    lattice = reduced.lattice
    return np.sort(np.array(lattice.abc)) / lattice.volume ** (1.0 / 3.0)


def _fingerprint(reduced: Structure) -> np.ndarray:
    """Unit vector of Gaussian-smeared partial radial distribution functions g_AB(r) − 1 for every
    element pair (Oganov–Valle style), with distances in units of (V/n)^(1/3)."""
    n = len(reduced)
    scaled = reduced.copy()
    scaled.scale_lattice(float(n))  # one cubic unit per atom
    symbols = np.array([site.specie.symbol for site in scaled])
    centres, neighbours, _, distances = scaled.get_neighbor_list(_FP_R_MAX + 3 * _FP_SIGMA)
    shell = 4.0 * np.pi * np.maximum(_FP_GRID, 0.3) ** 2
    parts = []
    for a, b in itertools.combinations_with_replacement(sorted(set(symbols)), 2):
        n_a, n_b = int((symbols == a).sum()), int((symbols == b).sum())
        pair = (symbols[centres] == a) & (symbols[neighbours] == b)
        offsets = (_FP_GRID[None, :] - distances[pair][:, None]) / _FP_SIGMA
        density = np.exp(-0.5 * offsets**2).sum(axis=0) / (_FP_SIGMA * np.sqrt(2.0 * np.pi))
        g = density / (shell * n_a * n_b / n) - 1.0
        parts.append(g * np.sqrt(n_a * n_b) / n)
    vector = np.concatenate(parts)
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector
