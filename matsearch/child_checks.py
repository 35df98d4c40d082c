"""The checks a child passes before it is relaxed: the spec's validity rules (every child, once) and
the screen a builtin child must pass before it counts (valid, not seen, not a known material)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from pymatgen.core import Structure

from matsearch.candidate import Candidate, Status
from matsearch.proposers.base import StructureCheck
from matsearch.spec import RunSpec
from matsearch.structures.dedup import DuplicateIndex, MatchTolerances
from matsearch.structures.known import KnownMaterials
from matsearch.structures.limits import ChemistryLimits
from matsearch.structures.validity import check_validity


def validity_check(spec: RunSpec, limits: ChemistryLimits) -> StructureCheck:
    """Why a structure breaks the spec's validity rules or chemistry (systems included), or None."""
    validity = spec.validity

    def check(structure: Structure) -> str | None:
        return check_validity(
            structure,
            limits,
            check_charge_neutrality=validity.charge_neutrality,
            min_distance_factor=validity.min_distance_factor,
            volume_ratio=validity.volume_ratio,
        )

    return check


def builtin_screen(
    valid: StructureCheck, seen: DuplicateIndex, known: KnownMaterials | None
) -> StructureCheck:
    """The check a builtin child must pass before it counts: `valid`, not in `seen` and, with
    `known` (when generating; not in CSP, where finding the known answer is the point), not a
    known material."""

    def screen(structure: Structure) -> str | None:
        if (reason := valid(structure)) is not None:
            return reason
        if (match := seen.find(structure)) is not None:
            return f"duplicate of candidate {match}"
        if known is not None and (material := known.match(structure)) is not None:
            return f"known material {material.material_id}"
        return None

    return screen


def check_children(
    children: Iterable[Candidate], valid: StructureCheck, seen: DuplicateIndex
) -> Iterator[Candidate]:
    """Check each PROPOSED child in order and yield it once its status is set: INVALID (`valid`'s
    reason; skipped when the proposer's screen already ran it), DUPLICATE of a structure in `seen`,
    or VALID (then it joins `seen`)."""
    for candidate in children:
        if candidate.status != Status.PROPOSED:
            continue
        started = time.perf_counter()
        reason = None if candidate.valid_when_proposed else valid(candidate.structure)
        if reason is not None:
            candidate.reject(reason)
        elif (match := seen.find(candidate.structure)) is not None:
            candidate.reject_duplicate(match)
        else:
            candidate.accept()
            seen.add(candidate.id, candidate.structure)
        candidate.timings["check"] = time.perf_counter() - started
        yield candidate


def seen_structures(history: Iterable[Candidate], tolerances: MatchTolerances) -> DuplicateIndex:
    """Every structure a run has seen, from its stored unique candidates (`history`, in id order):
    the proposed structure of each and the relaxed structure of each marked one (a strained copy
    of a relaxed parent is a duplicate before it is relaxed back into it)."""
    index = DuplicateIndex(tolerances)
    for c in history:
        index.add(c.id, c.structure)
        if c.novelty is not None and c.status == Status.SCORED:
            index.add(c.id, c.relaxed)
    return index
