"""Property objectives computed after relaxation: bulk modulus, strain energy, custom fitness.

Each is computed only when the spec lists it as an objective (or names a custom function). A
failure is stored on the candidate (`extra[...]`) and never stops the run; the missing score then
ranks the candidate last on that objective.
"""

from __future__ import annotations

import logging
from typing import Any

from matsearch.candidate import Candidate
from matsearch.results import RelaxResult
from matsearch.scoring.custom import apply_custom_fitness, load_fitness_table
from matsearch.spec import RunSpec

logger = logging.getLogger(__name__)


class PropertyScorer:
    """Scores relaxed candidates on the spec's property objectives with the run's MLIP."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.functions = load_fitness_table(spec.custom)  # a bad dotted path fails before the run starts
        self.wants_bulk_modulus = spec.has_objective("bulk_modulus")
        self.wants_strain_energy = spec.has_objective("strain_energy")
        self._model: Any = None
        self._calculator: Any = None

    @property
    def needed(self) -> bool:
        return bool(self.functions) or self.wants_bulk_modulus or self.wants_strain_energy

    def score(self, candidate: Candidate, result: RelaxResult) -> None:
        """Add property scores to a freshly relaxed, scored candidate."""
        if candidate.relaxed is None:
            return
        if self.functions:
            apply_custom_fitness(candidate, self.functions, result)
        if self.wants_bulk_modulus:
            self._bulk_modulus(candidate)
        if self.wants_strain_energy:
            self._strain_energy(candidate)

    def _bulk_modulus(self, candidate: Candidate) -> None:
        settings = self.spec.scoring.bulk_modulus
        options = dict(
            strain=settings.strain,
            n_points=settings.n_points,
            fmax=settings.fmax,
            steps=settings.steps,
            eos=settings.eos,
        )
        if self.spec.mlip.backend == "matsearch":
            from matsearch.scoring.bulk_modulus import bulk_modulus_batched

            (outcome,) = bulk_modulus_batched([candidate.relaxed], self.model, **options)
        else:
            from matsearch.scoring.bulk_modulus import bulk_modulus

            outcome = bulk_modulus(candidate.relaxed, self.calculator, **options)
        if outcome.error is None:
            candidate.scores["bulk_modulus"] = outcome.b0_gpa
        else:
            candidate.extra["bulk_modulus_error"] = outcome.error

    def _strain_energy(self, candidate: Candidate) -> None:
        from matsearch.scoring.strain_energy import strain_energy

        settings = self.spec.scoring.strain_energy
        outcome = strain_energy(
            candidate.relaxed, self.calculator, settings.strain, fmax=settings.fmax, steps=settings.steps
        )
        if outcome.error is None:
            candidate.scores["strain_energy"] = outcome.strain_energy_per_atom
        else:
            candidate.extra["strain_energy_error"] = outcome.error

    @property
    def model(self) -> Any:
        """The in-house model (matsearch backend), loaded on first use."""
        if self._model is None:
            from matsearch.mlip import load_model

            self._model = load_model(self.spec.mlip.model, device=self.spec.mlip.device)
        return self._model

    @property
    def calculator(self) -> Any:
        """An ASE calculator for the run's MLIP backend, built on first use."""
        if self._calculator is None:
            if self.spec.mlip.backend == "matsearch":
                self._calculator = self.model.as_ase_calculator()
            else:
                from chgnet.model.dynamics import CHGNetCalculator

                self._calculator = CHGNetCalculator()
        return self._calculator
