"""Batched L-BFGS for fixed-cell relaxations (atom positions only), with ASE's update rule.

Each system keeps its own history of the last ``memory`` position and force changes; all systems
step together with per-atom tensors (no padding, no per-system loop), so it runs on any device.
The step follows ``ase.optimize.LBFGS`` (no line search, damping 1): the two-loop recursion with
the initial inverse Hessian 1/``alpha``, then the step is scaled so that no atom of the system
moves more than ``max_step``. Started near a minimum (the volumes of a bulk-modulus scan, a
strained cell) it needs about half the steps of FIRE (benchmarks/RESULTS.md); far from one
(proposed structures, with the cell) FIRE stays the optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from matsearch.relax_defaults import LBFGS_ALPHA_EV_PER_A2, LBFGS_MAX_STEP_A, LBFGS_MEMORY


@dataclass(frozen=True)
class LbfgsParams:
    """L-BFGS settings: ASE's names (``alpha`` in eV/Å², ``max_step`` in Å); defaults in
    ``relax_defaults``."""

    alpha: float = LBFGS_ALPHA_EV_PER_A2  # initial Hessian guess
    max_step: float = LBFGS_MAX_STEP_A  # largest displacement of one atom in one step
    memory: int = LBFGS_MEMORY  # position/force changes remembered per system


@dataclass
class LbfgsState:
    """History of B systems with N atoms in total; slot -1 is the newest, empty slots are zero."""

    steps: torch.Tensor  # [memory, N, 3] position changes s, Å
    gradient_changes: torch.Tensor  # [memory, N, 3] changes y of -force, eV/Å
    rho: torch.Tensor  # [memory, B] 1 / (y·s) per system, 0 for an empty slot
    previous_positions: torch.Tensor  # [N, 3] Å
    previous_forces: torch.Tensor  # [N, 3] eV/Å
    has_previous: torch.Tensor  # [B] bool

    @classmethod
    def start(cls, positions: torch.Tensor, n_systems: int, params: LbfgsParams) -> LbfgsState:
        """Empty history for systems whose atoms are `positions` [N, 3]."""
        history = positions.new_zeros((params.memory, *positions.shape))
        return cls(
            steps=history,
            gradient_changes=history.clone(),
            rho=positions.new_zeros((params.memory, n_systems)),
            previous_positions=positions.clone(),
            previous_forces=torch.zeros_like(positions),
            has_previous=torch.zeros(n_systems, dtype=torch.bool, device=positions.device),
        )

    def select(self, keep: torch.Tensor, atom_keep: torch.Tensor) -> LbfgsState:
        """Keep the systems where `keep` [B] is true (`atom_keep` [N]: their atoms)."""
        return LbfgsState(
            steps=self.steps[:, atom_keep],
            gradient_changes=self.gradient_changes[:, atom_keep],
            rho=self.rho[:, keep],
            previous_positions=self.previous_positions[atom_keep],
            previous_forces=self.previous_forces[atom_keep],
            has_previous=self.has_previous[keep],
        )

    def concat(self, other: LbfgsState) -> LbfgsState:
        """Append the systems of `other` after those of this state."""
        return LbfgsState(
            steps=torch.cat([self.steps, other.steps], dim=1),
            gradient_changes=torch.cat([self.gradient_changes, other.gradient_changes], dim=1),
            rho=torch.cat([self.rho, other.rho], dim=1),
            previous_positions=torch.cat([self.previous_positions, other.previous_positions]),
            previous_forces=torch.cat([self.previous_forces, other.previous_forces]),
            has_previous=torch.cat([self.has_previous, other.has_previous]),
        )


def lbfgs_step(
    state: LbfgsState, positions: torch.Tensor, forces: torch.Tensor, batch: torch.Tensor, params: LbfgsParams
) -> torch.Tensor:
    """Displacements [N, 3] (Å) of one L-BFGS step of every system at `positions` [N, 3] (Å) with
    `forces` [N, 3] (eV/Å); `batch` [N] is each atom's system. Updates `state` in place."""
    n_systems = state.rho.shape[1]

    def per_system(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return positions.new_zeros(n_systems).index_add(0, batch, (a * b).sum(dim=1))

    s = positions - state.previous_positions
    y = state.previous_forces - forces
    ys = per_system(y, s)
    fresh = state.has_previous & (ys != 0)
    atom_fresh = fresh[batch, None]
    new_rho = torch.where(fresh, 1.0 / torch.where(fresh, ys, torch.ones_like(ys)), torch.zeros_like(ys))
    # The oldest slot drops out and the newest change goes last (zero where there is none).
    state.steps = torch.cat([state.steps[1:], torch.where(atom_fresh, s, 0.0)[None]])
    state.gradient_changes = torch.cat([state.gradient_changes[1:], torch.where(atom_fresh, y, 0.0)[None]])
    state.rho = torch.cat([state.rho[1:], new_rho[None]])

    q = -forces
    coefficients = []
    for i in range(params.memory - 1, -1, -1):
        a = state.rho[i] * per_system(state.steps[i], q)
        q = q - a[batch, None] * state.gradient_changes[i]
        coefficients.append(a)
    z = q / params.alpha
    for i, a in zip(range(params.memory), reversed(coefficients), strict=True):
        b = state.rho[i] * per_system(state.gradient_changes[i], z)
        z = z + (a - b)[batch, None] * state.steps[i]

    step = -z
    longest = positions.new_zeros(n_systems).scatter_reduce(
        0, batch, step.norm(dim=1), reduce="amax", include_self=True
    )
    scale = torch.where(longest >= params.max_step, params.max_step / longest.clamp_min(1e-300), 1.0)
    state.previous_positions = positions.clone()
    state.previous_forces = forces.clone()
    state.has_previous = torch.ones_like(state.has_previous)
    return step * scale[batch, None]
