"""The evaluation stage in the process that owns the model: relax, then every property asked for.

Property scans run on the relaxed structures of the whole batch at once (one relaxer call per
property), so a batched relaxer evaluates all candidates' scaled or strained cells together.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from pymatgen.core import Structure

from matsearch.evaluation.bulk_modulus import bulk_moduli
from matsearch.evaluation.relaxer import Relaxer
from matsearch.evaluation.strain_energy import strain_energies
from matsearch.objectives import OBJECTIVES
from matsearch.results import Evaluation
from matsearch.spec import Scoring


def _bulk_moduli(structures: list[Structure], relaxer: Relaxer, scoring: Scoring) -> list:
    return [(f.b0_gpa, f.error) for f in bulk_moduli(structures, relaxer, scoring.bulk_modulus)]


def _strain_energies(structures: list[Structure], relaxer: Relaxer, scoring: Scoring) -> list:
    scans = strain_energies(structures, relaxer, scoring.strain_energy)
    return [(s.strain_energy_per_atom, s.error) for s in scans]


# objective → scan of a whole batch of relaxed structures: one (value, error) per structure
SCANS = {"bulk_modulus": _bulk_moduli, "strain_energy": _strain_energies}
# what `evaluate` computes after relaxing: property scans and functions of the relaxed structure
PROPERTY_OBJECTIVES = tuple(n for n, o in OBJECTIVES.items() if o.source != "relaxation")


class Evaluator:
    """Relaxes structures with one Relaxer and computes the requested property objectives.

    Args:
        relaxer: the MLIP backend (it holds the model).
        scoring: the run spec's `scoring` section (equation-of-state and strain settings).
    """

    def __init__(self, relaxer: Relaxer, scoring: Scoring) -> None:
        self.relaxer = relaxer
        self.scoring = scoring

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.relaxer.name

    def evaluate(self, structures: Sequence[Structure], properties: Collection[str] = ()) -> list[Evaluation]:
        """One Evaluation per input, same order: the relaxation, then `properties` (names from
        PROPERTY_OBJECTIVES: a scan of SCANS, or the objective's function of the relaxed structure)
        on every structure that relaxed. Never raises for a bad structure."""
        unknown = sorted(set(properties) - set(PROPERTY_OBJECTIVES))
        if unknown:
            raise ValueError(
                f"unknown properties {', '.join(unknown)}; allowed: {', '.join(PROPERTY_OBJECTIVES)}"
            )
        evaluations = [Evaluation(result) for result in self.relaxer.relax(list(structures))]
        relaxed = [e for e in evaluations if e.relax.error is None and e.relax.structure is not None]
        if not properties or not relaxed:
            return evaluations
        started = time.perf_counter()
        inputs = [e.relax.structure for e in relaxed]
        for name in PROPERTY_OBJECTIVES:
            if name not in properties:
                continue
            of_structure = OBJECTIVES[name].of_structure
            if of_structure is not None:
                values = [(of_structure(s), None) for s in inputs]
            else:
                values = SCANS[name](inputs, self.relaxer, self.scoring)
            for evaluation, (value, error) in zip(relaxed, values, strict=True):
                _record(evaluation, name, value, error)
        share = (time.perf_counter() - started) / len(relaxed)
        for evaluation in relaxed:
            evaluation.property_time_s = share
        return evaluations

    def single_point(self, structures: Sequence[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given; NaN where the model fails."""
        return self.relaxer.single_point(list(structures))


def _record(evaluation: Evaluation, name: str, value: float | None, error: str | None) -> None:
    if error is None and value is not None:
        evaluation.scores[name] = value
    else:
        evaluation.errors[name] = error or f"no {name} was computed"
