"""The checks a child passes before it is relaxed: the spec's validity rules (every child) and the
screen a builtin child must pass before it counts (valid, not seen, not a known material)."""

from __future__ import annotations

from pymatgen.core import Structure

from matsearch.proposers.base import StructureCheck
from matsearch.spec import RunSpec
from matsearch.structures.dedup import DuplicateIndex
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
