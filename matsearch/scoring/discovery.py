"""Known vs new, duplicates after relaxation and artefacts: which relaxed candidates are discoveries.

Each relaxed candidate is marked once, in id order, after its generation is relaxed:

1. flags: ``elemental`` (one element) and ``molecular`` (0-dimensional bonded network: isolated
   molecules or clusters, by Larsen's algorithm on MinimumDistanceNN bonds — CrystalNN and JmolNN
   call some real 3-D MP-20 crystals 0-D, MinimumDistanceNN none of a 40-crystal sample). The
   bonds are MinimumDistanceNN's rule (every neighbour within 10 Å closer than 1.1 × the nearest)
   applied to one vectorised neighbour list: the same dimensionality as pymatgen's per-site search
   on 300 MP-20 crystals, in 25 instead of 80 ms each;
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
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
from pymatgen.analysis.dimensionality import get_dimensionality_larsen
from pymatgen.analysis.graphs import StructureGraph
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen: noble gases have no electronegativity
        if get_dimensionality_larsen(minimum_distance_bonds(structure)) == 0:
            flags.append(Flag.MOLECULAR)
    return flags


def minimum_distance_bonds(structure: Structure, tol: float = 0.1, cutoff_a: float = 10.0) -> StructureGraph:
    """The bonded structure of pymatgen's MinimumDistanceNN(tol, cutoff) — each site bonded to every
    neighbour within `cutoff_a` (Å) closer than (1 + tol) × its nearest — from one neighbour list."""
    centres, neighbours, images, distances = structure.get_neighbor_list(cutoff_a)
    graph = StructureGraph.from_empty_graph(structure, name="bonds")
    if len(distances) == 0:
        return graph
    nearest = np.full(len(structure), np.inf)
    np.minimum.at(nearest, centres, distances)
    for i, j, image in zip(
        *(a[distances < (1 + tol) * nearest[centres]] for a in (centres, neighbours, images)), strict=True
    ):
        graph.add_edge(int(i), int(j), to_jimage=tuple(int(x) for x in image), warn_duplicates=False)
    return graph


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
