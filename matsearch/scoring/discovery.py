"""Known vs new, duplicates after relaxation and artefacts: which relaxed candidates are discoveries.

Each relaxed candidate is marked once, in id order, after its generation is relaxed:

1. flags: ``elemental`` (one element) and ``molecular`` (0-dimensional bonded network: isolated
   molecules or clusters, by Larsen's algorithm on MinimumDistanceNN bonds — CrystalNN and JmolNN
   call some real 3-D MP-20 crystals 0-D, MinimumDistanceNN none of a 40-crystal sample). The
   bonds are MinimumDistanceNN's rule (every neighbour within 10 Å closer than 1.1 × the nearest)
   applied to one vectorised neighbour list. Larsen's dimensionality is the rank of the periodic
   translations that chains of bonds reach; it is 0 exactly when no chain leads from an atom to
   one of its own images, which one walk over the bonds decides (no graph objects): the same
   answer as pymatgen's `get_dimensionality_larsen` on MinimumDistanceNN's graph (332 structures
   compared), in 0.3 instead of 7.4 ms CPU per MP-20 crystal (graph and Larsen's search);
2. duplicate after relaxation: a relaxed structure that matches an earlier candidate's relaxed
   structure (StructureMatcher, the run's tolerances) makes the candidate a DUPLICATE of it;
3. novelty: the known material it reproduces (``known_id``), else ``new_structure`` when the index
   or the run's hull knows its composition, else ``new_composition``: a composition the hull lists
   is never a new composition. Where only the hull lists it (the index lacks that material's
   structure, so it could not be compared), ``extra["hull_entry"]`` names the hull's entry.
   Seeds are their known material by construction.

A discovery (S.U.N.) is a scored candidate that is new, carries no flag outside the spec's
``discovery.admit`` and lies at or below the stability threshold (eV/atom).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np
from pymatgen.core import Structure

from matsearch.candidate import Candidate, Flag, Novelty, Status
from matsearch.scoring.hull import HullReference
from matsearch.structures.dedup import DuplicateIndex, MatchTolerances
from matsearch.structures.known import KnownMaterials


def artefact_flags(structure: Structure) -> list[Flag]:
    """Why `structure` cannot be a discovery: elemental and/or molecular (empty when neither)."""
    flags = []
    if len(structure.composition.elements) == 1:
        flags.append(Flag.ELEMENTAL)
    if is_zero_dimensional(structure):
        flags.append(Flag.MOLECULAR)
    return flags


Bonds = tuple[np.ndarray, np.ndarray, np.ndarray]  # centre [n], neighbour [n], neighbour's image [n, 3]


def minimum_distance_bonds(structure: Structure, tol: float = 0.1, cutoff_a: float = 10.0) -> Bonds:
    """The bonds of pymatgen's MinimumDistanceNN(tol, cutoff) — each site bonded to every neighbour
    within `cutoff_a` (Å) closer than (1 + tol) × its nearest — from one neighbour list: site
    `centre` in the home cell is bonded to site `neighbour` in the cell shifted by `image`."""
    centres, neighbours, images, distances = structure.get_neighbor_list(cutoff_a)
    if len(distances) == 0:
        return centres, neighbours, images
    nearest = np.full(len(structure), np.inf)
    np.minimum.at(nearest, centres, distances)
    bonded = distances < (1 + tol) * nearest[centres]
    return centres[bonded], neighbours[bonded], images[bonded].astype(int)


def is_zero_dimensional(structure: Structure) -> bool:
    """True when the MinimumDistanceNN bonded network is 0-dimensional (Larsen et al.): walking the
    bonds from each atom, no atom is reached again in another periodic image."""
    centres, neighbours, images = minimum_distance_bonds(structure)
    bonded: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(len(structure))]
    for i, j, image in zip(centres.tolist(), neighbours.tolist(), images, strict=True):
        bonded[i].append((j, image))
        bonded[j].append((i, -image))
    cell: list[np.ndarray | None] = [None] * len(structure)  # the image each atom was reached in
    for start in range(len(structure)):
        if cell[start] is not None:
            continue
        cell[start], walk = np.zeros(3, dtype=int), [start]
        while walk:
            i = walk.pop()
            for j, image in bonded[i]:
                reached = cell[i] + image
                if cell[j] is None:
                    cell[j] = reached
                    walk.append(j)
                elif not np.array_equal(cell[j], reached):
                    return False
    return True


class DiscoveryMarker:
    """Marks relaxed candidates against the known materials, the run's hull (compositions) and the
    run's relaxed history."""

    def __init__(
        self, known: KnownMaterials, tolerances: MatchTolerances, hull: HullReference | None = None
    ) -> None:
        self.known = known
        self.hull = hull
        self._relaxed = DuplicateIndex(tolerances)

    def remember(self, candidates: Iterable[Candidate]) -> None:
        """Add the already-marked scored `candidates` to the history (on resume), in id order. One
        scored but not yet marked when the run was killed is left out: it is marked on resume, and
        would otherwise match itself."""
        marked = (c for c in candidates if c.status == Status.SCORED and c.novelty is not None)
        for candidate in sorted(marked, key=lambda c: c.id):
            self._relaxed.add(candidate.id, candidate.relaxed)

    def mark(self, candidate: Candidate) -> None:
        """Set flags, duplicate status and novelty of a SCORED candidate (in place)."""
        relaxed = candidate.relaxed
        candidate.flags = artefact_flags(relaxed)
        earlier = self._relaxed.find(relaxed)
        if earlier is not None:
            candidate.relaxed_into(earlier)
        else:
            self._relaxed.add(candidate.id, relaxed)
        seed_id = candidate.extra.get("material_id") if candidate.operator == "seed" else None
        match = None if seed_id else self.known.match(relaxed)
        if seed_id or match is not None:
            candidate.novelty = Novelty.KNOWN
            candidate.known_id = seed_id or match.material_id
        elif self.known.rows(relaxed.composition.reduced_formula):
            candidate.novelty = Novelty.NEW_STRUCTURE
        elif self.hull is not None and (entry := self.hull.listed(relaxed.composition)) is not None:
            candidate.novelty = Novelty.NEW_STRUCTURE
            candidate.extra["hull_entry"] = entry
        else:
            candidate.novelty = Novelty.NEW_COMPOSITION


def mark_children(
    children: Iterable[Candidate], marker: DiscoveryMarker, seen: DuplicateIndex
) -> Iterator[Candidate]:
    """Mark each unmarked SCORED child in order (known vs new, duplicate after relaxation, artefact
    flags) and yield it; the relaxed structure of each that stays unique joins `seen`."""
    for candidate in children:
        if candidate.status != Status.SCORED or candidate.novelty is not None:
            continue
        started = time.perf_counter()
        marker.mark(candidate)
        candidate.timings["mark"] = time.perf_counter() - started
        if candidate.status == Status.SCORED:
            seen.add(candidate.id, candidate.relaxed)
        yield candidate


def is_new(candidate: Candidate) -> bool:
    """A marked candidate that reproduces no known material."""
    return candidate.novelty in (Novelty.NEW_STRUCTURE, Novelty.NEW_COMPOSITION)


def is_artefact(candidate: Candidate, admit: Iterable[str] = ()) -> bool:
    """A candidate carrying a flag that the spec does not admit."""
    admitted = set(admit)
    return any(flag not in admitted for flag in candidate.flags)


def is_discovery(candidate: Candidate, stable_threshold: float, admit: Iterable[str] = ()) -> bool:
    """S.U.N.: scored (hence unique after relaxation), new, not an artefact, and e_above_hull at or
    below `stable_threshold` (eV/atom)."""
    return (
        candidate.status == Status.SCORED
        and candidate.e_above_hull is not None
        and candidate.e_above_hull <= stable_threshold
        and is_new(candidate)
        and not is_artefact(candidate, admit)
    )
