"""The default Relaxer: our batched MLIP (FIRE with the Frechet cell filter; L-BFGS in a fixed cell)."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Literal

import torch
from pymatgen.core import Structure

from matsearch.mlip.optimizers.relax import relax
from matsearch.mlip.registry import load_model, same_model
from matsearch.mlip.state import BatchedState
from matsearch.relax_defaults import RelaxSettings
from matsearch.results import RelaxResult

if TYPE_CHECKING:
    from matsearch.mlip.model import MLIPModel

logger = logging.getLogger(__name__)


class MLIPRelaxer:
    """Relax many structures at once with the in-house MLIP (loaded once, on first use).

    Args:
        model_name: name or path understood by ``matsearch.mlip.load_model``.
        device: "cpu", "cuda", ... ; None lets ``load_model`` choose.
        settings: fmax, step cap (FIRE for `relax`), timeout per structure, batch atom and memory
            budgets; `settings.prerelax_model`, a faster model (name or path), relaxes every
            structure first, to `settings.prerelax_fmax` eV/Å, and the model then finishes from
            there and gives every energy (the deformation energy's start included). None, or the
            model itself: the model relaxes alone.
    """

    name = "matsearch"

    def __init__(
        self, model_name: str = "default", device: str | None = None, settings: RelaxSettings | None = None
    ) -> None:
        self.model_name = model_name
        self.device = device
        self.settings = RelaxSettings() if settings is None else settings
        self._model: MLIPModel | None = None
        self._prerelaxer: MLIPModel | None = None

    @classmethod
    def from_model(cls, model: MLIPModel, settings: RelaxSettings | None = None) -> MLIPRelaxer:
        """A relaxer around an already loaded model (e.g. float64 or fine-tuned in memory);
        `settings` as given, None: the defaults without a prerelax model."""
        if settings is None:
            settings = RelaxSettings(prerelax_model=None)
        relaxer = cls(model_name=model.info.name, settings=settings)
        relaxer._model = model
        return relaxer

    @property
    def model(self) -> MLIPModel:
        """The MLIP, loaded on first access."""
        if self._model is None:
            self._model = load_model(self.model_name, device=self.device)
        return self._model

    @property
    def energy_convention(self) -> str:
        """What the model's energies mean ("mp2020" or "raw-pbe")."""
        return self.model.energy_convention

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        """Relax positions and cell of each structure; one result per input, same order."""
        prerelax_model = self.settings.prerelax_model
        if prerelax_model is None or same_model(prerelax_model, self.model_name):
            return self._run(structures, self.settings, cell_filter=True, optimizer="fire")
        return self._relax_in_two_fidelities(structures, prerelax_model)

    def _relax_in_two_fidelities(self, structures: list[Structure], prerelax_model: str) -> list[RelaxResult]:
        """The fast model relaxes first, the model finishes: where the fast model fails, the model
        starts from the input. Steps and wall time add up; the initial energy is the model's."""
        if not structures:
            return []
        if self._prerelaxer is None:
            self._prerelaxer = load_model(prerelax_model, device=str(self.model.device))
        fast = relax(
            structures, self._prerelaxer, dataclasses.replace(self.settings, fmax=self.settings.prerelax_fmax)
        )
        starts = [r.structure if r.error is None else s for r, s in zip(fast, structures, strict=True)]
        final = self._run(starts, self.settings, cell_filter=True, optimizer="fire")
        initial = self.single_point(structures)
        for first, result, energy in zip(fast, final, initial, strict=True):
            result.steps += first.steps
            result.wall_time_s += first.wall_time_s
            result.initial_energy_per_atom = energy if math.isfinite(energy) else None
        return final

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        """Relax the positions of every structure in its fixed cell, all in one batched L-BFGS run
        (`fmax` eV/Å and `steps` replace the settings' own; the rest of the settings hold)."""
        settings = dataclasses.replace(self.settings, fmax=fmax, steps=steps)
        return self._run(structures, settings, cell_filter=False, optimizer="lbfgs")

    def _run(
        self,
        structures: list[Structure],
        settings: RelaxSettings,
        *,
        cell_filter: bool,
        optimizer: Literal["fire", "lbfgs"],
    ) -> list[RelaxResult]:
        if not structures:
            return []
        return relax(structures, self.model, settings, cell_filter=cell_filter, optimizer=optimizer)

    def single_point(self, structures: list[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given; NaN where the model fails."""
        energies: list[float] = []
        chunk: list[Structure] = []
        n_atoms = 0
        for structure in structures:
            if chunk and n_atoms + len(structure) > self.settings.batch_atoms:
                energies += self._energies(chunk)
                chunk, n_atoms = [], 0
            chunk.append(structure)
            n_atoms += len(structure)
        if chunk:
            energies += self._energies(chunk)
        return energies

    def _energies(self, chunk: list[Structure]) -> list[float]:
        """Energies per atom of one chunk; on a model error, each structure alone."""
        model = self.model
        try:
            state = BatchedState.from_structures(chunk, device=model.device, dtype=model.dtype)
            with torch.no_grad():
                energy = model.compute(state, forces=False, stress=False)["energy"]
        except Exception as exc:  # noqa: BLE001 - isolate the structure that broke the batch
            if len(chunk) == 1:
                logger.warning("single-point energy failed for %s: %s", chunk[0].formula, exc)
                return [math.nan]
            return [e for structure in chunk for e in self._energies([structure])]
        per_atom = energy.double().cpu() / torch.tensor([len(s) for s in chunk])
        return per_atom.tolist()
