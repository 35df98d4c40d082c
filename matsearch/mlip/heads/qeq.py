"""Charge-equilibration (QEq) long-range head, in the style of NequIP-LR / 4G-HDNNP.

Per structure the charges minimise

    E(q) = Σ_i χ_i q_i + ½ Σ_i J_Z(i) q_i² + ½ qᵀ A q    subject to Σ_i q_i = Q,

with electronegativities χ_i (eV/e) from the atom features, one learnable hardness J_Z > 0 (eV/e²)
per element, and A the Gaussian-charge Coulomb matrix from ``ewald.coulomb_matrix`` (self energy of
each cloud on the diagonal, so A is positive semi-definite). The minimiser solves the linear system

    [A + diag(J)  1] [q]   [−χ]
    [1ᵀ           0] [λ] = [ Q ]

for all structures at once (padded to the largest structure; padding rows are identity). The head
returns E(q*) (eV) and q* (e). Gradients flow through the solve, so forces and stresses include
the charge response.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from matsearch.mlip.heads.ewald import check_screening, coulomb_matrix, pad_atoms
from matsearch.mlip.heads.mlp import AtomScalarMLP


def _inverse_softplus(value: float) -> float:
    """x with softplus(x) = value (value > 0)."""
    return value + math.log(-math.expm1(-value))


class ChargeEquilibrationHead(nn.Module):
    """QEq charges and energy from atom features (see module docstring).

    sigma: Gaussian charge width in Å; dl: k-space resolution in Å; hidden_dim defaults to
    feature_dim; max_atomic_number: largest element with a hardness; initial_hardness in eV/e².
    The electronegativity output layer starts at zero, so for neutral structures an untrained
    head gives zero charges and adds exactly 0 eV; call ``prepare_for_training`` before fitting.
    """

    kind = "qeq"

    def __init__(
        self,
        feature_dim: int,
        sigma: float = 1.0,
        dl: float = 2.0,
        hidden_dim: int | None = None,
        max_atomic_number: int = 94,
        initial_hardness: float = 10.0,
    ) -> None:
        super().__init__()
        check_screening(sigma, dl)
        if not initial_hardness > 0:
            raise ValueError(f"initial_hardness must be positive (eV/e²), got {initial_hardness}")
        self.feature_dim = feature_dim
        self.hidden_dim = hidden_dim or feature_dim
        self.sigma = sigma
        self.dl = dl
        self.max_atomic_number = max_atomic_number
        self.initial_hardness = initial_hardness
        self.electronegativity_net = AtomScalarMLP(feature_dim, self.hidden_dim)
        self.raw_hardness = nn.Parameter(
            torch.full((max_atomic_number,), _inverse_softplus(initial_hardness))
        )

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments and ``kind``; ``heads.long_range_head_from_config`` rebuilds it."""
        return {
            "kind": self.kind,
            "feature_dim": self.feature_dim,
            "sigma": self.sigma,
            "dl": self.dl,
            "hidden_dim": self.hidden_dim,
            "max_atomic_number": self.max_atomic_number,
            "initial_hardness": self.initial_hardness,
        }

    def prepare_for_training(self, std: float = 0.05, generator: torch.Generator | None = None) -> bool:
        """Perturb a still-zero electronegativity layer (at q = 0 its gradient vanishes)."""
        if not self.electronegativity_net.output_is_zero():
            return False
        self.electronegativity_net.perturb_output(std, generator)
        return True

    def hardness(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """[N] hardness J in eV/e² for atomic numbers 1..max_atomic_number."""
        return nn.functional.softplus(self.raw_hardness)[atomic_numbers - 1]

    def forward(
        self,
        atom_features: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor,
        batch: torch.Tensor,
        pbc: torch.Tensor,
        atomic_numbers: torch.Tensor | None = None,
        total_charge: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy [B] in eV and equilibrated charges [N] in e.

        Arguments as ``LatentEwaldHead.forward``; ``atomic_numbers`` [N] is required here (element
        hardness) and ``total_charge`` [B] in e defaults to 0 (neutral structures).
        """
        if atomic_numbers is None:
            raise ValueError("ChargeEquilibrationHead needs atomic_numbers for the element hardness")
        n_systems = cell.shape[0]
        if total_charge is None:
            total_charge = positions.new_zeros(n_systems)
        electronegativity = self.electronegativity_net(atom_features)
        coulomb, slots = coulomb_matrix(positions, cell, batch, pbc, self.sigma, self.dl)
        n = coulomb.shape[1]
        real = pad_atoms(torch.ones_like(batch, dtype=positions.dtype), batch, slots, n_systems, n)
        hardness = pad_atoms(self.hardness(atomic_numbers), batch, slots, n_systems, n)
        chi = pad_atoms(electronegativity, batch, slots, n_systems, n)
        curvature = coulomb + torch.diag_embed(hardness + (1 - real))  # padding rows: identity
        kkt = torch.cat(
            [
                torch.cat([curvature, real[:, :, None]], dim=2),
                torch.cat([real[:, None, :], real.new_zeros((n_systems, 1, 1))], dim=2),
            ],
            dim=1,
        )
        rhs = torch.cat([-chi, total_charge.to(chi.dtype)[:, None]], dim=1)
        solution = torch.linalg.solve(kkt, rhs)
        q = solution[:, :n]
        quadratic = coulomb + torch.diag_embed(hardness)
        energy = (chi * q).sum(dim=1) + 0.5 * torch.einsum("bi,bij,bj->b", q, quadratic, q)
        return energy, q[batch, slots]
