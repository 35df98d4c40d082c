"""Batched FIRE with the Frechet cell filter (ASE's definitions), for many structures at once.

The optimiser follows ASE's definitions so that it can be cross-checked against
``ase.optimize.FIRE`` on ``ase.filters.FrechetCellFilter``:

- FIRE with ASE's default parameters; each system has its own velocity, time step and mixing
  factor over all its degrees of freedom, and the norm of one system's step is capped at
  ``max_step``.
- Frechet cell filter: the atom degrees of freedom are the positions mapped back to the starting
  cell, u = r F^-T; the cell degrees of freedom are ``exp_cell_factor * logm(F)``, where F is the
  deformation gradient from the starting cell (cell = start_cell F^T) and ``exp_cell_factor`` is
  the number of atoms; zero external pressure.
- A system is converged when every row of its generalised force (one row per atom plus the three
  cell rows) has a norm below ``fmax``.

``FireState`` also carries the geometry of fixed-cell L-BFGS runs (``relax.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from pymatgen.core import Structure

from matsearch.mlip.state import BatchedState


@dataclass(frozen=True)
class FireParams:
    """FIRE parameters, ASE's names and defaults (time in ASE's FIRE units, steps in Å)."""

    dt: float = 0.1
    dt_max: float = 1.0
    max_step: float = 0.2  # cap on the norm of one system's step over all its degrees of freedom
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99


@dataclass
class FireState:
    """Optimiser state of B systems with N atoms in total, float64 on the model's device."""

    ref_positions: torch.Tensor  # [N, 3] Å, positions mapped back to the starting cell
    velocities: torch.Tensor  # [N, 3]
    atomic_numbers: torch.Tensor  # [N]
    batch: torch.Tensor  # [N] system index
    start_cell: torch.Tensor  # [B, 3, 3] Å, lattice vectors as rows
    cell_dof: torch.Tensor  # [B, 3, 3] exp_cell_factor * logm(F)
    cell_velocities: torch.Tensor  # [B, 3, 3]
    cell_factor: torch.Tensor  # [B] exp_cell_factor (number of atoms)
    pbc: torch.Tensor  # [B, 3]
    dt: torch.Tensor  # [B]
    alpha: torch.Tensor  # [B]
    n_downhill: torch.Tensor  # [B] consecutive steps with P = F·v > 0 (ASE's Nsteps)
    n_steps: torch.Tensor  # [B] optimiser steps taken
    start_volume: torch.Tensor  # [B] Å³, cell volume at the start
    initial_energy: torch.Tensor  # [B] eV/atom at the first finite evaluation, NaN before it

    @property
    def n_systems(self) -> int:
        return self.start_cell.shape[0]

    def deformation(self) -> torch.Tensor:
        """[B, 3, 3] deformation gradient F = expm(cell_dof / exp_cell_factor)."""
        return torch.linalg.matrix_exp(self.cell_dof / self.cell_factor[:, None, None])

    def cell(self) -> torch.Tensor:
        """[B, 3, 3] current lattice vectors (rows) in Å."""
        return self.start_cell @ self.deformation().transpose(1, 2)

    def positions(self) -> torch.Tensor:
        """[N, 3] current Cartesian positions in Å."""
        f_t = self.deformation().transpose(1, 2)[self.batch]
        return (self.ref_positions.unsqueeze(1) @ f_t).squeeze(1)

    def to_batched_state(self, dtype: torch.dtype) -> BatchedState:
        """Current structures as the model's input state."""
        return BatchedState(
            positions=self.positions().to(dtype),
            cell=self.cell().to(dtype),
            atomic_numbers=self.atomic_numbers,
            batch=self.batch,
            pbc=self.pbc,
        )

    def select(self, keep: torch.Tensor) -> FireState:
        """Keep the systems where the [B] bool mask `keep` is true, renumbering `batch`."""
        atom_keep = keep[self.batch]
        values = {
            field.name: getattr(self, field.name)[atom_keep if field.name in _PER_ATOM else keep]
            for field in fields(self)
        }
        values["batch"] = (torch.cumsum(keep.long(), 0) - 1)[values["batch"]]
        return FireState(**values)

    def concat(self, other: FireState) -> FireState:
        """Append the systems of `other` after those of this state."""
        values = {
            field.name: torch.cat([getattr(self, field.name), getattr(other, field.name)])
            for field in fields(self)
        }
        values["batch"] = torch.cat([self.batch, other.batch + self.n_systems])
        return FireState(**values)


_PER_ATOM = frozenset({"ref_positions", "velocities", "atomic_numbers", "batch"})


def fire_init(structures: Sequence[Structure], device: torch.device | str, params: FireParams) -> FireState:
    """Start FIRE from the given structures: zero velocities, F = identity, dt = params.dt."""
    state = BatchedState.from_structures(list(structures), device=device, dtype=torch.float64)
    n_systems = state.n_systems
    counts = state.n_atoms_per_system.to(torch.float64)

    def per_system(value: float) -> torch.Tensor:
        return torch.full((n_systems,), value, dtype=torch.float64, device=state.device)

    return FireState(
        ref_positions=state.positions,
        velocities=torch.zeros_like(state.positions),
        atomic_numbers=state.atomic_numbers,
        batch=state.batch,
        start_cell=state.cell,
        cell_dof=torch.zeros_like(state.cell),
        cell_velocities=torch.zeros_like(state.cell),
        cell_factor=counts,
        pbc=state.pbc,
        dt=per_system(params.dt),
        alpha=per_system(params.alpha_start),
        n_downhill=torch.zeros(n_systems, dtype=torch.long, device=state.device),
        n_steps=torch.zeros(n_systems, dtype=torch.long, device=state.device),
        start_volume=torch.linalg.det(state.cell).abs(),
        initial_energy=per_system(math.nan),
    )


def _expm_frechet_adjoint(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] matrix M with M_mn = <L(A, E_mn), G>, L the Frechet derivative of expm at A.

    By the adjoint identity this is L(Aᵀ, G), read off the upper-right block of
    expm([[Aᵀ, G], [0, Aᵀ]]).
    """
    a_t = a.transpose(1, 2)
    block = torch.zeros(a.shape[0], 6, 6, dtype=a.dtype, device=a.device)
    block[:, :3, :3] = a_t
    block[:, 3:, 3:] = a_t
    block[:, :3, 3:] = g
    return torch.linalg.matrix_exp(block)[:, :3, 3:]


def generalized_forces(
    fire: FireState, forces: torch.Tensor, stress: torch.Tensor, cell_filter: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forces on the filter's degrees of freedom: atoms [N, 3] (eV/Å) and cell [B, 3, 3] (eV).

    `forces` [N, 3] eV/Å and `stress` [B, 3, 3] eV/Å³ (ASE sign) at the current structures.
    Without the cell filter the cell forces are zero, so the cell never moves.
    """
    deform = fire.deformation()
    atom_forces = (forces.unsqueeze(1) @ deform[fire.batch]).squeeze(1)
    if not cell_filter:
        return atom_forces, torch.zeros_like(fire.cell_dof)
    volume = torch.linalg.det(fire.cell()).abs()
    virial = -volume[:, None, None] * stress
    cell_gradient = virial @ torch.linalg.inv(deform.transpose(1, 2))
    factor = fire.cell_factor[:, None, None]
    cell_forces = _expm_frechet_adjoint(fire.cell_dof / factor, cell_gradient) / factor
    return atom_forces, cell_forces


def max_generalized_force(
    fire: FireState, atom_forces: torch.Tensor, cell_forces: torch.Tensor
) -> torch.Tensor:
    """[B] largest row norm of each system's generalised force (atoms and cell rows)."""
    atom_max = torch.zeros(fire.n_systems, dtype=atom_forces.dtype, device=atom_forces.device)
    atom_max = atom_max.scatter_reduce(
        0, fire.batch, atom_forces.norm(dim=1), reduce="amax", include_self=True
    )
    return torch.maximum(atom_max, cell_forces.norm(dim=2).amax(dim=1))


def _per_system_dot(
    fire: FireState, a: torch.Tensor, b: torch.Tensor, cell_a: torch.Tensor, cell_b: torch.Tensor
) -> torch.Tensor:
    """[B] sum over each system's atom and cell degrees of freedom of a·b."""
    total = (cell_a * cell_b).sum(dim=(1, 2))
    return total.index_add(0, fire.batch, (a * b).sum(dim=1))


def fire_step(
    fire: FireState, atom_forces: torch.Tensor, cell_forces: torch.Tensor, params: FireParams
) -> FireState:
    """One FIRE step of every system (ASE's update rule), in place; returns `fire`."""
    first = fire.n_steps == 0
    vf = _per_system_dot(fire, atom_forces, fire.velocities, cell_forces, fire.cell_velocities)
    ff = _per_system_dot(fire, atom_forces, atom_forces, cell_forces, cell_forces)
    vv = _per_system_dot(fire, fire.velocities, fire.velocities, fire.cell_velocities, fire.cell_velocities)
    downhill = ~first & (vf > 0.0)
    uphill = ~first & ~downhill

    # Downhill: mix the velocity towards the force direction; speed up after n_min such steps.
    mix = torch.where(downhill, fire.alpha, torch.zeros_like(fire.alpha))
    scale = mix * torch.sqrt(vv) / torch.sqrt(ff).clamp_min(torch.finfo(ff.dtype).tiny)
    keep = torch.where(uphill, torch.zeros_like(mix), 1.0 - mix)
    grow = downhill & (fire.n_downhill > params.n_min)
    dt = torch.where(grow, (fire.dt * params.f_inc).clamp_max(params.dt_max), fire.dt)
    alpha = torch.where(grow, fire.alpha * params.f_alpha, fire.alpha)
    n_downhill = torch.where(downhill, fire.n_downhill + 1, fire.n_downhill)
    # Uphill: stop, restart mixing, shrink the time step.
    alpha = torch.where(uphill, torch.full_like(alpha, params.alpha_start), alpha)
    dt = torch.where(uphill, dt * params.f_dec, dt)
    n_downhill = torch.where(uphill, torch.zeros_like(n_downhill), n_downhill)

    velocities = keep[fire.batch, None] * fire.velocities + scale[fire.batch, None] * atom_forces
    cell_velocities = keep[:, None, None] * fire.cell_velocities + scale[:, None, None] * cell_forces
    velocities = velocities + dt[fire.batch, None] * atom_forces
    cell_velocities = cell_velocities + dt[:, None, None] * cell_forces

    step = dt[fire.batch, None] * velocities
    cell_step = dt[:, None, None] * cell_velocities
    norm = torch.sqrt(_per_system_dot(fire, step, step, cell_step, cell_step))
    shrink = torch.where(norm > params.max_step, params.max_step / norm, torch.ones_like(norm))

    fire.ref_positions = fire.ref_positions + shrink[fire.batch, None] * step
    fire.cell_dof = fire.cell_dof + shrink[:, None, None] * cell_step
    fire.velocities, fire.cell_velocities = velocities, cell_velocities
    fire.dt, fire.alpha, fire.n_downhill = dt, alpha, n_downhill
    fire.n_steps = fire.n_steps + 1
    return fire
