"""Batched structure relaxation of many structures at once: the loop that admits, checks,
evaluates, finishes and steps them.

Optimisers: FIRE with the Frechet cell filter (``fire.py``, ASE's definitions), or in a fixed cell
L-BFGS (``optimizer="lbfgs"``, ``lbfgs.py``), which needs about half FIRE's steps when the
structures start near a minimum. Converged, failed and timed-out systems leave the batch; waiting
structures take their place while the atom budget allows.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from matsearch.mlip.inputs import UnsupportedStructure, check_structure, reduce_cell
from matsearch.mlip.optimizers.autobatch import AtomBudgetQueue, memory_budget_bytes
from matsearch.mlip.optimizers.fire import (
    FireParams,
    FireState,
    fire_init,
    fire_step,
    generalized_forces,
    max_generalized_force,
)
from matsearch.mlip.optimizers.lbfgs import LbfgsParams, LbfgsState, lbfgs_step
from matsearch.mlip.protocol import BatchedModel
from matsearch.mlip.state import BatchedState
from matsearch.mlip.units import EV_PER_A3_IN_GPA
from matsearch.relax_defaults import RelaxSettings
from matsearch.results import RelaxResult

logger = logging.getLogger(__name__)


def min_pair_distances(
    positions: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor, n_max: int | None = None
) -> torch.Tensor:
    """[B] shortest distance in Å between two atoms (or an atom and its own image) per system.

    Periodic images within one cell of the nearest fractional image are searched, so the result
    is never shorter than the true shortest distance (very skewed cells may hide a closer pair).
    `n_max`, the most atoms in one system, saves a device-to-host read when the caller knows it.
    """
    n_systems = cell.shape[0]
    counts = torch.bincount(batch, minlength=n_systems)
    n_max = int(counts.max()) if n_max is None else n_max
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(batch), device=batch.device) - starts[batch]
    frac = torch.linalg.solve(cell[batch].transpose(1, 2), positions.unsqueeze(-1)).squeeze(-1)
    padded = torch.zeros(n_systems, n_max, 3, dtype=positions.dtype, device=positions.device)
    padded[batch, local] = frac
    present = torch.zeros(n_systems, n_max, dtype=torch.bool, device=positions.device)
    present[batch, local] = True
    diff = padded[:, :, None, :] - padded[:, None, :, :]
    diff = diff - torch.round(diff)
    valid = present[:, :, None] & present[:, None, :]
    self_pair = torch.eye(n_max, dtype=torch.bool, device=positions.device)
    best = torch.full((n_systems,), math.inf, dtype=positions.dtype, device=positions.device)
    for shift in itertools.product((-1.0, 0.0, 1.0), repeat=3):
        offset = torch.tensor(shift, dtype=positions.dtype, device=positions.device)
        dist = torch.einsum("bijk,bkl->bijl", diff + offset, cell).norm(dim=-1)
        mask = valid & ~self_pair if shift == (0.0, 0.0, 0.0) else valid
        dist = torch.where(mask, dist, torch.full_like(dist, math.inf))
        best = torch.minimum(best, dist.amin(dim=(1, 2)))
    return best


@dataclass
class _Running:
    """Host-side bookkeeping of one structure in the running batch (its tensors live in FireState)."""

    index: int  # position in the caller's list
    start_time: float  # time.perf_counter() when it joined the batch
    start_volume: float  # Å³


def _input_problem(structure: Structure, atom_cutoff: float) -> str | None:
    """One sentence saying why `structure` (cell already reduced) cannot be relaxed, or None."""
    if len(structure) == 0:
        return "the structure has no atoms"
    if not structure.is_ordered:
        return "the structure has partial occupancies; only ordered structures can be relaxed"
    try:
        check_structure(structure, atom_cutoff)
    except UnsupportedStructure as exc:
        return str(exc)
    return None


def _estimated_bytes(model: BatchedModel, structure: Structure) -> float:
    """The model's peak-memory estimate for `structure`: 0 without atoms, infinite without volume."""
    if len(structure) == 0:
        return 0.0
    volume = abs(structure.volume)
    return model.estimated_bytes(len(structure), volume) if volume > 0 else math.inf


def _reduced(structure: Structure) -> Structure:
    """The structure on a reduced basis; unchanged when it cannot be reduced (non-finite cell)."""
    try:
        return reduce_cell(structure)
    except (ValueError, np.linalg.LinAlgError):
        return structure


def relax(
    structures: Sequence[Structure],
    model: BatchedModel | None = None,
    settings: RelaxSettings | None = None,
    *,
    cell_filter: bool = True,
    optimizer: Literal["fire", "lbfgs"] = "fire",
    params: FireParams | None = None,
    max_volume_ratio: float = 5.0,
    min_distance: float = 0.5,
) -> list[RelaxResult]:
    """Relax positions (and, with `cell_filter`, the cell) of many structures in batches.

    Args:
        structures: ordered pymatgen structures.
        model: batched MLIP; None loads ``matsearch.mlip.load_model()``.
        settings: fmax (eV/Å, on every atom and cell row of the filter's force), step cap,
            timeout per structure, atom budget of one model call (a larger structure runs alone)
            and estimated peak memory of one model call (GB, from each structure's density and the
            model's cutoffs; on CUDA at most 80 % of the GPU's free memory; a structure that alone
            needs more fails). None: ``RelaxSettings()``. Its prerelax fields are not read here.
        cell_filter: relax the cell with the Frechet cell filter (zero pressure).
        optimizer: "fire", or "lbfgs" (positions only: needs ``cell_filter=False``).
        params: FIRE parameters (ASE's defaults).
        max_volume_ratio: a structure whose volume grows or shrinks by more than this factor fails.
        min_distance: a structure with two atoms closer than this (Å) fails.

    Returns:
        One RelaxResult per input, same order, relaxed on the LLL-reduced basis of the input cell.
        A structure that cannot be relaxed (non-finite, flat, coincident atoms or too dense to
        evaluate; NaN from the model, exploding or collapsing cell, overlapping atoms, timeout,
        model error) gets ``error`` set while the others carry on; this function does not raise
        for one bad input.
    """
    settings = RelaxSettings() if settings is None else settings
    if not isinstance(settings, RelaxSettings):
        raise TypeError(f"settings must be a RelaxSettings, got {type(settings).__name__}")
    if max_volume_ratio <= 1:
        raise ValueError(f"max_volume_ratio must be above 1, got {max_volume_ratio}")
    if optimizer not in ("fire", "lbfgs"):
        raise ValueError(f"optimizer must be 'fire' or 'lbfgs', got {optimizer!r}")
    if optimizer == "lbfgs" and cell_filter:
        raise ValueError("the lbfgs optimiser relaxes positions only; use cell_filter=False or 'fire'")
    if model is None:
        from matsearch.mlip.registry import load_model

        model = load_model()
    return _BatchRelaxation(
        structures,
        model,
        settings,
        cell_filter=cell_filter,
        params=params or FireParams(),
        lbfgs_params=LbfgsParams() if optimizer == "lbfgs" else None,
        max_volume_ratio=max_volume_ratio,
        min_distance=min_distance,
    ).run()


class _BatchRelaxation:
    """The relaxation loop of `relax`: admit, check, evaluate, finish, step."""

    def __init__(
        self,
        structures: Sequence[Structure],
        model: BatchedModel,
        settings: RelaxSettings,
        *,
        cell_filter: bool,
        params: FireParams,
        lbfgs_params: LbfgsParams | None,
        max_volume_ratio: float,
        min_distance: float,
    ) -> None:
        self.structures = [_reduced(s) for s in structures]
        self.model = model
        self.settings = settings
        self.cell_filter = cell_filter
        self.params = params
        self.lbfgs_params = lbfgs_params
        self.max_volume_ratio = max_volume_ratio
        self.min_distance = min_distance
        self.sizes = [len(s) for s in self.structures]
        self.atom_cutoff = model.cutoff
        self.max_batch_bytes = memory_budget_bytes(settings.max_batch_memory_gb, torch.device(model.device))
        self.memory = [_estimated_bytes(model, s) for s in self.structures]
        self.queue = AtomBudgetQueue(self.sizes, settings.batch_atoms, self.memory, self.max_batch_bytes)
        self.results: list[RelaxResult | None] = [None] * len(self.structures)
        self.fire: FireState | None = None
        self.lbfgs: LbfgsState | None = None  # with optimizer="lbfgs"; geometry stays in `fire`
        self.running: list[_Running] = []

    def run(self) -> list[RelaxResult]:
        start = time.perf_counter()
        for index, structure in enumerate(self.structures):
            problem = _input_problem(structure, self.atom_cutoff)
            if problem is None and self.memory[index] > self.max_batch_bytes:
                problem = (
                    f"evaluating it would need about {self.memory[index] / 1e9:.3g} GB, more than "
                    f"the {self.max_batch_bytes / 1e9:g} GB batch memory limit"
                )
            if problem is None:
                self.queue.put(index)
            else:
                self.results[index] = RelaxResult(None, None, None, error=problem)
        while len(self.queue) or self.running:
            self._admit()
            self._iterate()
        results = [r for r in self.results if r is not None]
        assert len(results) == len(self.structures)
        for result in results:
            result.energy_convention = self.model.energy_convention
        logger.info(
            "relaxed %d structures in %.1f s: %d converged, %d failed",
            len(results),
            time.perf_counter() - start,
            sum(r.converged for r in results),
            sum(r.error is not None for r in results),
        )
        return results

    def _admit(self) -> None:
        indices = self.queue.take(
            sum(self.sizes[r.index] for r in self.running),
            sum(self.memory[r.index] for r in self.running),
        )
        if not indices:
            return
        new = fire_init([self.structures[i] for i in indices], self.model.device, self.params)
        self.fire = new if self.fire is None else self.fire.concat(new)
        if self.lbfgs_params is not None:
            history = LbfgsState.start(new.ref_positions, new.n_systems, self.lbfgs_params)
            self.lbfgs = history if self.lbfgs is None else self.lbfgs.concat(history)
        now = time.perf_counter()
        self.running += [_Running(i, now, self.structures[i].volume) for i in indices]

    def _iterate(self) -> None:
        """Check, evaluate and step the running batch once.

        Every per-structure decision is a mask on the model's device; the host reads two small
        tensors per step (is any geometry broken; which systems are done) and the results of the
        structures that finish, gathered in one transfer, so a CUDA batch does not synchronise
        once per structure.
        """
        fire = self.fire
        assert fire is not None
        positions, cell = fire.positions(), fire.cell()
        broken = self._broken_geometry(positions, cell)
        if bool(broken.any()):
            self._finish_broken_geometry(broken, positions, cell)
            return
        state = BatchedState(
            positions=positions.to(self.model.dtype),
            cell=cell.to(self.model.dtype),
            atomic_numbers=fire.atomic_numbers,
            batch=fire.batch,
            pbc=fire.pbc,
        )
        try:
            out = self.model.compute(state)
        except Exception as exc:  # noqa: BLE001 - find the structure that broke the model
            self._finish_failed(self._isolate_model_errors(state, exc))
            return
        energy = out["energy"].detach().double()
        forces = out["forces"].detach().double()
        stress = out["stress_ev_per_a3"].detach().double()
        bad_atoms = (~torch.isfinite(forces).all(dim=1)).long()
        bad_forces = torch.zeros_like(fire.n_steps).index_add(0, fire.batch, bad_atoms) > 0
        finite = torch.isfinite(energy) & torch.isfinite(stress).all(dim=(1, 2)) & ~bad_forces
        energy_per_atom = energy / fire.cell_factor
        unset = torch.isnan(fire.initial_energy) & finite
        fire.initial_energy = torch.where(unset, energy_per_atom, fire.initial_energy)
        atom_forces, cell_forces = generalized_forces(fire, forces, stress, self.cell_filter)
        converged = max_generalized_force(fire, atom_forces, cell_forces) < self.settings.fmax
        done = ~finite | converged | (fire.n_steps >= self.settings.steps)
        finishing = set(torch.nonzero(done).flatten().tolist()) | self._timed_out()
        if finishing:
            self._finish(sorted(finishing), finite, converged, cell, positions, forces, stress, out)
        keep = self._keep([b not in finishing for b in range(len(self.running))])
        if self.fire is None:
            return
        if self.lbfgs is None:
            fire_step(self.fire, atom_forces[keep[fire.batch]], cell_forces[keep], self.params)
        else:  # fixed cell: the positions are the filter's atom coordinates
            kept = self.fire
            kept.ref_positions = kept.ref_positions + lbfgs_step(
                self.lbfgs, kept.ref_positions, forces[keep[fire.batch]], kept.batch, self.lbfgs_params
            )
            kept.n_steps = kept.n_steps + 1

    def _timed_out(self) -> set[int]:
        """Running systems past their wall-clock limit (host clock only)."""
        timeout_s = self.settings.timeout_s
        if timeout_s is None:
            return set()
        now = time.perf_counter()
        return {b for b, run in enumerate(self.running) if now - run.start_time > timeout_s}

    def _broken_geometry(self, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """[B] bool on the device: two atoms closer than min_distance, or the volume out of range."""
        fire = self.fire
        assert fire is not None
        n_max = max(self.sizes[run.index] for run in self.running)
        shortest = min_pair_distances(positions, cell, fire.batch, n_max)
        ratio = torch.linalg.det(cell).abs() / fire.start_volume
        wrong_volume = (ratio < 1.0 / self.max_volume_ratio) | (ratio > self.max_volume_ratio)
        return (shortest < self.min_distance) | wrong_volume

    def _finish_broken_geometry(
        self, broken: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor
    ) -> None:
        """Fail the systems with broken geometry, each with the reason; the others carry on."""
        fire = self.fire
        assert fire is not None
        n_max = max(self.sizes[run.index] for run in self.running)
        shortest = min_pair_distances(positions, cell, fire.batch, n_max).cpu().tolist()
        volumes = torch.linalg.det(cell).abs().cpu().tolist()
        steps = fire.n_steps.cpu().tolist()
        errors: list[str | None] = []
        for b, (run, bad) in enumerate(zip(self.running, broken.cpu().tolist(), strict=True)):
            if not bad:
                errors.append(None)
            elif shortest[b] < self.min_distance:
                errors.append(
                    f"two atoms are {shortest[b]:.2f} Å apart at step {steps[b]}, closer than "
                    f"the {self.min_distance:g} Å minimum"
                )
            else:
                errors.append(
                    f"the cell volume went from {run.start_volume:.1f} to {volumes[b]:.1f} Å³ by "
                    f"step {steps[b]}, beyond the allowed factor {self.max_volume_ratio:g}"
                )
        self._finish_failed(errors)

    def _isolate_model_errors(self, state: BatchedState, exc: Exception) -> list[str | None]:
        """After the model raised on the batch, evaluate each system alone to find the culprits.

        Re-raises `exc` when every system passes alone (a batch-wide problem such as memory).
        """
        assert self.fire is not None
        n_steps = self.fire.n_steps.cpu().tolist()
        if state.n_systems > 1:
            errors: list[str | None] = []
            counts = state.n_atoms_per_system.tolist()
            start = 0
            for b, count in enumerate(counts):
                atoms = slice(start, start + count)
                single = BatchedState(
                    positions=state.positions[atoms],
                    cell=state.cell[b : b + 1],
                    atomic_numbers=state.atomic_numbers[atoms],
                    batch=torch.zeros_like(state.batch[atoms]),
                    pbc=state.pbc[b : b + 1],
                )
                start += count
                try:
                    self.model.compute(single)
                except Exception as single_exc:  # noqa: BLE001 - recorded as this structure's error
                    errors.append(f"the model failed at step {n_steps[b]}: {single_exc}")
                else:
                    errors.append(None)
            if any(errors):
                return errors
        elif state.n_systems == 1:
            return [f"the model failed at step {n_steps[0]}: {exc}"]
        raise exc

    def _finish_failed(self, errors: list[str | None]) -> None:
        """Record failures for the systems with an error and drop them from the batch."""
        assert self.fire is not None
        now = time.perf_counter()
        n_steps = self.fire.n_steps.cpu().tolist()
        initial = self.fire.initial_energy.cpu().tolist()
        for b, (run, error) in enumerate(zip(self.running, errors, strict=True)):
            if error is not None:
                self.results[run.index] = RelaxResult(
                    structure=None,
                    energy_per_atom=None,
                    initial_energy_per_atom=None if math.isnan(initial[b]) else initial[b],
                    steps=n_steps[b],
                    wall_time_s=now - run.start_time,
                    error=error,
                )
        self._keep([e is None for e in errors])

    def _finish(
        self,
        finishing: list[int],
        finite: torch.Tensor,
        converged: torch.Tensor,
        cell: torch.Tensor,
        positions: torch.Tensor,
        forces: torch.Tensor,
        stress: torch.Tensor,
        out: dict[str, torch.Tensor],
    ) -> None:
        """Record the results of the running systems `finishing`, read from the device in one go."""
        fire = self.fire
        assert fire is not None
        device = fire.batch.device
        chosen = torch.tensor(finishing, device=device)
        atoms = torch.isin(fire.batch, chosen)
        magmoms = out.get("magmoms")
        per_system = (
            torch.stack(
                [
                    fire.n_steps[chosen].double(),
                    finite[chosen].double(),
                    converged[chosen].double(),
                    out["energy"].detach().double()[chosen],
                    fire.initial_energy[chosen],
                ],
                dim=1,
            )
            .cpu()
            .tolist()
        )
        cells = cell[chosen].cpu().numpy()
        stress_gpa = (stress[chosen] * EV_PER_A3_IN_GPA).cpu().tolist()
        sizes = [self.sizes[self.running[b].index] for b in finishing]
        atom_positions = np.split(positions[atoms].cpu().numpy(), np.cumsum(sizes)[:-1])
        atom_forces = np.split(forces[atoms].cpu().numpy(), np.cumsum(sizes)[:-1])
        moments = (
            None
            if magmoms is None
            else np.split(magmoms.detach()[atoms].double().cpu().numpy(), np.cumsum(sizes)[:-1])
        )
        now = time.perf_counter()
        for k, b in enumerate(finishing):
            run = self.running[b]
            steps, is_finite, is_converged, energy, initial = per_system[k]
            initial_energy = None if math.isnan(initial) else initial
            error = None
            if not is_finite:
                error = f"the model returned NaN or infinite energy, forces or stress at step {int(steps)}"
            elif not is_converged and steps < self.settings.steps:
                timeout_s = self.settings.timeout_s
                error = f"relaxation exceeded {timeout_s:g} s wall-clock timeout after {int(steps)} steps"
            if error is not None:
                self.results[run.index] = RelaxResult(
                    None,
                    None,
                    initial_energy,
                    steps=int(steps),
                    wall_time_s=now - run.start_time,
                    error=error,
                )
                continue
            self.results[run.index] = RelaxResult(
                structure=Structure(
                    Lattice(cells[k]),
                    self.structures[run.index].species,
                    atom_positions[k],
                    coords_are_cartesian=True,
                ),
                energy_per_atom=energy / sizes[k],
                initial_energy_per_atom=initial_energy,
                converged=bool(is_converged),
                steps=int(steps),
                wall_time_s=now - run.start_time,
                forces_max=float(np.linalg.norm(atom_forces[k], axis=1).max()),
                forces=atom_forces[k].tolist(),
                stress_gpa=stress_gpa[k],
                magmoms=None if moments is None else moments[k].tolist(),
            )

    def _keep(self, kept: list[bool]) -> torch.Tensor:
        """Drop the running systems where `kept` is false; returns it as a [B] mask on the device."""
        assert self.fire is not None
        keep = torch.tensor(kept, dtype=torch.bool, device=self.fire.batch.device)
        self.running = [run for run, k in zip(self.running, kept, strict=True) if k]
        if self.lbfgs is not None:
            self.lbfgs = self.lbfgs.select(keep, keep[self.fire.batch]) if self.running else None
        self.fire = self.fire.select(keep) if self.running else None
        return keep
