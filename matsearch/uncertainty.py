"""Model disagreement as the uncertainty of a scored candidate, and the DFT acquisition rule.

A second model (the fast CHGNet-architecture ``chgnet-0.3.0``; ``sevennet-0`` when the run itself
scored with ``chgnet-0.3.0``) computes the energy of each scored candidate's relaxed structure
(single point). Both energies are put on the MP2020 scale and on the run's hull with the MP
elemental references, so Δ = scoring model − second model (eV/atom) measures disagreement, not
convention. Stored per candidate in ``extra["uncertainty"]``.

Acquisition (``matsearch export --priority``): priority = e_hull − PRIORITY_WEIGHT × |Δe_hull|
(eV/atom), lowest first: low predicted e_hull and high disagreement go to DFT first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matsearch.candidate import Candidate, Status
from matsearch.dft.compare import mlip_corrected_energy
from matsearch.evaluation.fast_energy import energy_convention, fast_energies
from matsearch.scoring.corrections import CorrectionError, mp2020_energy_per_atom
from matsearch.scoring.hull import HullReference
from matsearch.spec import RunSpec
from matsearch.store import RunStore

FAST_MODEL, ACCURATE_MODEL = "chgnet-0.3.0", "sevennet-0"
PRIORITY_WEIGHT = 1.0  # eV/atom of e_hull traded for 1 eV/atom of disagreement
KEY = "uncertainty"


def second_model(scoring_model: str) -> str:
    """The model that disagrees with `scoring_model` (a name or a file)."""
    from matsearch.mlip.registry import ALIASES

    return ACCURATE_MODEL if ALIASES.get(scoring_model, scoring_model) == FAST_MODEL else FAST_MODEL


def disagreement(
    candidates: Sequence[Candidate], model_name: str, hull: HullReference, device: str | None = None
) -> list[dict[str, Any] | None]:
    """Per candidate (relaxed, scored): the second model's energy and e_hull and Δ of both
    (eV/atom); None where that model fails or the MP2020 scheme rejects the composition."""
    energies = fast_energies([c.relaxed for c in candidates], model_name, device)
    convention = energy_convention(model_name, device)
    rows: list[dict[str, Any] | None] = []
    for candidate, energy in zip(candidates, energies, strict=True):
        structure = candidate.relaxed
        try:
            corrected = mp2020_energy_per_atom(structure, energy, convention)
        except CorrectionError:
            corrected = math.nan
        if not math.isfinite(corrected):  # the second model failed, or MP2020 rejects the composition
            rows.append(None)
            continue
        primary = mlip_corrected_energy(candidate)
        e_hull = hull.e_above_hull(structure.composition, corrected)
        primary_hull = hull.e_above_hull(structure.composition, primary)
        rows.append(
            {
                "model": model_name,
                "energy_per_atom_ev": energy,
                "e_above_hull_ev_per_atom": e_hull,
                "delta_energy_ev_per_atom": primary - corrected,
                "delta_e_hull_ev_per_atom": primary_hull - e_hull,
            }
        )
    return rows


def add_uncertainty(run_dir: Path, spec: RunSpec, *, device: str | None = None) -> int:
    """Compute and store the disagreement of every scored candidate that lacks it; returns how many
    were computed. Needs the run not to be running (it writes the store)."""
    hull = HullReference.named(spec.reference.hull)
    with RunStore.open(Path(run_dir)) as store:
        missing = [
            c for c in store.candidates(status=Status.SCORED) if KEY not in c.extra and c.relaxed is not None
        ]
        if not missing:
            return 0
        scoring = FAST_MODEL if spec.mlip.backend == "chgnet" else spec.mlip.model  # the chgnet package
        rows = disagreement(missing, second_model(scoring), hull, device)
        for candidate, row in zip(missing, rows, strict=True):
            candidate.extra[KEY] = row
        store.update(missing)
    return len(missing)


def priority(candidate: Candidate) -> float | None:
    """The acquisition value (eV/atom, lower = compute first); None without e_hull or uncertainty."""
    row = candidate.extra.get(KEY)
    if candidate.e_above_hull is None or not row:
        return None
    return candidate.e_above_hull - PRIORITY_WEIGHT * abs(row["delta_e_hull_ev_per_atom"])


def by_priority(candidates: Sequence[Candidate]) -> list[Candidate]:
    """`candidates` in acquisition order (module docstring); those without a priority last, by e_hull."""
    return sorted(
        candidates,
        key=lambda c: (priority(c) is None, priority(c) if priority(c) is not None else c.e_above_hull, c.id),
    )


def uncertainty_view(candidate: Candidate) -> dict[str, Any] | None:
    """The stored disagreement with its priority (status.schema.json, candidates[].uncertainty)."""
    row = candidate.extra.get(KEY)
    return None if not row else row | {"priority_ev_per_atom": priority(candidate)}
