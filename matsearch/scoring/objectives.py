"""Turn an evaluation into objective scores on a candidate (energies in eV/atom, bulk modulus in GPa)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

from matsearch.candidate import Candidate, Status
from matsearch.results import Evaluation, RelaxResult
from matsearch.scoring.corrections import CorrectionError, mp2020_energy_per_atom
from matsearch.scoring.custom import FitnessFn, apply_custom_fitness
from matsearch.scoring.hull import HullReference

METASTABLE_EV_PER_ATOM = 0.1  # MatLLMSearch's metastability threshold on e_above_hull
# No DFT formation energy in the Materials Project is below about −4.5 eV/atom (fluorides); a relaxed
# structure far below that has fallen into a hole of the MLIP's energy surface, not found a material.
MIN_FORMATION_EV_PER_ATOM = -5.0


def apply_relax_result(candidate: Candidate, result: RelaxResult, hull: HullReference) -> None:
    """Fill relaxed structure, energies and scores, or mark the candidate failed with the reason
    (relaxation error, or a formation energy below MIN_FORMATION_EV_PER_ATOM).

    Scores: `e_above_hull` (eV/atom, vs `hull`), `formation_energy` (eV/atom),
    `energy_per_atom` (eV/atom, as the model predicts it) and `deformation_energy` = E_proposed −
    E_relaxed (eV/atom). Formation energy and e_above_hull use the MP2020-corrected energy
    (``scoring.corrections``), so they mean the same whichever model scored; the correction is kept
    in ``extra["mp2020_correction_ev_per_atom"]``.
    Seeds get no deformation energy: they are known DFT-relaxed crystals, not proposals, and a
    trivial ΔE ≈ 0 would let them dominate every child for good (selection counts a missing score
    as worse than every present one).
    """
    candidate.timings["relax"] = result.wall_time_s
    candidate.relax_steps = result.steps
    candidate.converged = result.converged
    if result.error is not None or result.structure is None or result.energy_per_atom is None:
        candidate.fail(result.error or "relaxation returned no structure")
        return
    composition = result.structure.composition
    try:
        corrected = mp2020_energy_per_atom(result.structure, result.energy_per_atom, result.energy_convention)
    except CorrectionError as exc:
        candidate.fail(str(exc))
        return
    formation = hull.formation_energy_per_atom(composition, corrected)
    if formation < MIN_FORMATION_EV_PER_ATOM:
        candidate.fail(
            f"unphysical_energy: formation energy {formation:.2f} eV/atom is below "
            f"{MIN_FORMATION_EV_PER_ATOM:g}, lower than any known compound (a hole in the MLIP)"
        )
        return
    candidate.relaxed = result.structure
    candidate.energy_per_atom = result.energy_per_atom
    candidate.initial_energy_per_atom = result.initial_energy_per_atom
    candidate.forces = result.forces
    candidate.stress_gpa = result.stress_gpa
    candidate.e_above_hull = hull.e_above_hull(composition, corrected)
    candidate.extra["mp2020_correction_ev_per_atom"] = corrected - result.energy_per_atom
    candidate.scores.update(
        e_above_hull=candidate.e_above_hull,
        formation_energy=formation,
        energy_per_atom=result.energy_per_atom,
    )
    if result.initial_energy_per_atom is not None and candidate.operator != "seed":
        candidate.scores["deformation_energy"] = result.initial_energy_per_atom - result.energy_per_atom
    candidate.extra["hull_reference"] = hull.name
    candidate.score()


def apply_evaluation(candidate: Candidate, evaluation: Evaluation, hull: HullReference) -> None:
    """`apply_relax_result`, then the property scores of a scored candidate; a property that could
    not be computed leaves its reason in ``extra["<name>_error"]`` (the missing score ranks last)."""
    apply_relax_result(candidate, evaluation.relax, hull)
    if candidate.status != Status.SCORED:
        return
    candidate.scores.update(evaluation.scores)
    for name, error in evaluation.errors.items():
        candidate.extra[f"{name}_error"] = error
    if evaluation.scores or evaluation.errors:
        candidate.timings["properties"] = evaluation.property_time_s


def score_children(
    waiting: list[Candidate],
    evaluations: Iterable[tuple[int, Evaluation]],
    hull: HullReference,
    fitness: Mapping[str, FitnessFn],
) -> Iterator[Candidate]:
    """Score the `waiting` (VALID) candidates as their evaluations arrive (`(index into waiting,
    Evaluation)`, in any order): `apply_evaluation`, then the custom `fitness` functions of a
    scored one; yields each candidate once its status is set."""
    for index, evaluation in evaluations:
        candidate = waiting[index]
        apply_evaluation(candidate, evaluation, hull)
        if candidate.status == Status.SCORED and fitness:
            started = time.perf_counter()
            apply_custom_fitness(candidate, fitness, evaluation.relax)
            candidate.timings["custom"] = time.perf_counter() - started
        yield candidate
