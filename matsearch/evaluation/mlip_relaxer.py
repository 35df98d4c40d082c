"""The default Relaxer: our batched MLIP (FIRE with the Frechet cell filter; L-BFGS in a fixed cell)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Literal

import torch
from pymatgen.core import Structure

from matsearch.mlip.optimizers.relax import relax
from matsearch.mlip.registry import load_model, same_model
from matsearch.mlip.state import BatchedState
from matsearch.relax_defaults import (
    BATCH_ATOMS,
    FMAX_EV_PER_A,
    MAX_BATCH_MEMORY_GB,
    MAX_STEPS,
    PRERELAX_FMAX_EV_PER_A,
    PRERELAX_MODEL,
    TIMEOUT_S,
)
from matsearch.results import RelaxResult

if TYPE_CHECKING:
    from matsearch.mlip.model import MLIPModel

logger = logging.getLogger(__name__)


class MLIPRelaxer:
    """Relax many structures at once with the in-house MLIP (loaded once, on first use).

    Args:
        model_name: name or path understood by ``matsearch.mlip.load_model``.
        device: "cpu", "cuda", ... ; None lets ``load_model`` choose.
        fmax: convergence threshold, eV/Å (atoms and Frechet cell rows).
        steps: optimiser step cap per structure (FIRE for `relax`).
        timeout_s: wall-clock seconds per structure, counted from when it joins the batch;
            None for no limit.
        batch_atoms: atom budget of one batched model call.
        max_batch_memory_gb: estimated peak memory budget of one batched model call, GB.
        prerelax_model: a faster model (name or path) that relaxes every structure first, to
            `prerelax_fmax` eV/Å; the model then finishes from there and gives every energy
            (the deformation energy's start included). None, or the model itself: the model
            relaxes alone.
    """

    name = "matsearch"

    def __init__(
        self,
        model_name: str = "default",
        device: str | None = None,
        fmax: float = FMAX_EV_PER_A,
        steps: int = MAX_STEPS,
        timeout_s: float | None = TIMEOUT_S,
        batch_atoms: int = BATCH_ATOMS,
        max_batch_memory_gb: float = MAX_BATCH_MEMORY_GB,
        prerelax_model: str | None = PRERELAX_MODEL,
        prerelax_fmax: float = PRERELAX_FMAX_EV_PER_A,
    ) -> None:
        if batch_atoms < 1:
            raise ValueError(f"batch_atoms must be at least 1, got {batch_atoms}")
        if prerelax_fmax <= 0:
            raise ValueError(f"prerelax_fmax must be positive (eV/Å), got {prerelax_fmax}")
        self.model_name = model_name
        self.device = device
        self.fmax = fmax
        self.steps = steps
        self.timeout_s = timeout_s
        self.batch_atoms = batch_atoms
        self.max_batch_memory_gb = max_batch_memory_gb
        self.prerelax_model = prerelax_model
        self.prerelax_fmax = prerelax_fmax
        self._model: MLIPModel | None = None
        self._prerelaxer: MLIPModel | None = None

    @classmethod
    def from_model(cls, model: MLIPModel, **settings: float | int | None) -> MLIPRelaxer:
        """A relaxer around an already loaded model (e.g. float64 or fine-tuned in memory);
        `settings` are the other constructor arguments (no prerelax unless one is named)."""
        relaxer = cls(model_name=model.info.name, **{"prerelax_model": None, **settings})
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
        if self.prerelax_model is None or same_model(self.prerelax_model, self.model_name):
            return self._run(structures, self.fmax, self.steps, cell_filter=True, optimizer="fire")
        return self._relax_in_two_fidelities(structures)

    def _relax_in_two_fidelities(self, structures: list[Structure]) -> list[RelaxResult]:
        """The fast model relaxes first, the model finishes: where the fast model fails, the model
        starts from the input. Steps and wall time add up; the initial energy is the model's."""
        if not structures:
            return []
        if self._prerelaxer is None:
            self._prerelaxer = load_model(self.prerelax_model, device=str(self.model.device))
        fast = relax(
            structures,
            self._prerelaxer,
            fmax=self.prerelax_fmax,
            steps=self.steps,
            max_batch_atoms=self.batch_atoms,
            timeout_s=self.timeout_s,
            max_batch_memory_gb=self.max_batch_memory_gb,
        )
        starts = [r.structure if r.error is None else s for r, s in zip(fast, structures, strict=True)]
        final = self._run(starts, self.fmax, self.steps, cell_filter=True, optimizer="fire")
        initial = self.single_point(structures)
        for first, result, energy in zip(fast, final, initial, strict=True):
            result.steps += first.steps
            result.wall_time_s += first.wall_time_s
            result.initial_energy_per_atom = energy if math.isfinite(energy) else None
        return final

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        """Relax the positions of every structure in its fixed cell, all in one batched L-BFGS run."""
        return self._run(structures, fmax, steps, cell_filter=False, optimizer="lbfgs")

    def _run(
        self,
        structures: list[Structure],
        fmax: float,
        steps: int,
        *,
        cell_filter: bool,
        optimizer: Literal["fire", "lbfgs"],
    ) -> list[RelaxResult]:
        if not structures:
            return []
        return relax(
            structures,
            self.model,
            fmax=fmax,
            steps=steps,
            max_batch_atoms=self.batch_atoms,
            cell_filter=cell_filter,
            optimizer=optimizer,
            timeout_s=self.timeout_s,
            max_batch_memory_gb=self.max_batch_memory_gb,
        )

    def single_point(self, structures: list[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given; NaN where the model fails."""
        energies: list[float] = []
        chunk: list[Structure] = []
        n_atoms = 0
        for structure in structures:
            if chunk and n_atoms + len(structure) > self.batch_atoms:
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
