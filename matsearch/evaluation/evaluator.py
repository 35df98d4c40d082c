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
from matsearch.results import Evaluation
from matsearch.spec import Scoring

PROPERTY_OBJECTIVES = ("bulk_modulus", "strain_energy")  # computed here; the rest come from relaxing


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
        PROPERTY_OBJECTIVES) on every structure that relaxed. Never raises for a bad structure."""
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
        if "bulk_modulus" in properties:
            fits = bulk_moduli(inputs, self.relaxer, self.scoring.bulk_modulus)
            for evaluation, fit in zip(relaxed, fits, strict=True):
                _record(evaluation, "bulk_modulus", fit.b0_gpa, fit.error)
        if "strain_energy" in properties:
            scans = strain_energies(inputs, self.relaxer, self.scoring.strain_energy)
            for evaluation, scan in zip(relaxed, scans, strict=True):
                _record(evaluation, "strain_energy", scan.strain_energy_per_atom, scan.error)
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
