"""Elemental reference energies μ_i computed with the run's own MLIP.

For each element, every known polymorph (MP PBE reference structures) is relaxed with the MLIP and
the lowest energy per atom is μ_i. Formation energies then use the same model on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from matsearch import data
from matsearch.errors import DataError
from matsearch.evaluation.executor import Executor


def mlip_elemental_references(elements: Iterable[str], executor: Executor) -> dict[str, float]:
    """μ_i (eV/atom) per element: the lowest relaxed MLIP energy over its known polymorphs."""
    polymorphs = data.load_elemental_reference_structures(list(elements))
    owners = [el for el, structures in polymorphs.items() for _ in structures]
    structures = [s for group in polymorphs.values() for s in group]
    best: dict[str, float] = {}
    for index, evaluation in executor.evaluate(structures):
        result = evaluation.relax
        energy = result.energy_per_atom
        if result.error is None and energy is not None and math.isfinite(energy):
            element = owners[index]
            best[element] = min(best.get(element, math.inf), energy)
    missing = sorted(set(polymorphs) - set(best))
    if missing:
        raise DataError(
            f"the MLIP relaxed none of the reference structures of {', '.join(missing)}; "
            "use reference.elemental: dft"
        )
    return best
