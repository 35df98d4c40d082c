"""Latent Ewald Summation (LES) long-range head, polarisation and Born effective charges.

The head maps each atom's final feature vector to a latent charge q_i (e) and adds the
Gaussian-charge Ewald energy of those charges (``ewald.ewald_energy``, self interaction removed) to
the short-range energy. Only energies, forces and stresses are needed to train it; the charges then
give a polarisation and Born effective charges (Cheng 2025; Zhong & Cheng 2025).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from matsearch.mlip.heads.ewald import (
    check_screening,
    effective_cell,
    ewald_energy,
    fractional_coordinates,
    periodic_structures,
)
from matsearch.mlip.heads.mlp import AtomScalarMLP


def mean_per_structure(values: torch.Tensor, batch: torch.Tensor, n_systems: int) -> torch.Tensor:
    """[B] mean of per-atom ``values`` over each structure."""
    counts = torch.bincount(batch, minlength=n_systems).to(values.dtype)
    sums = values.new_zeros(n_systems).index_add(0, batch, values)
    return sums / counts


class LatentEwaldHead(nn.Module):
    """Latent charges from atom features and their Ewald energy.

    sigma: Gaussian charge width in Å; dl: k-space resolution in Å (k_c = 2π/dl); neutral: subtract
    each structure's mean charge so that every structure is neutral; hidden_dim defaults to
    feature_dim. The output layer starts at zero, so an untrained head adds exactly 0 eV. The energy
    is quadratic in the charges, so its gradient also vanishes there: call ``prepare_for_training``
    before fitting (``train.finetune`` does).
    """

    kind = "les"

    def __init__(
        self,
        feature_dim: int,
        sigma: float = 1.0,
        dl: float = 2.0,
        neutral: bool = True,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_screening(sigma, dl)
        self.feature_dim = feature_dim
        self.hidden_dim = hidden_dim or feature_dim
        self.sigma = sigma
        self.dl = dl
        self.neutral = neutral
        self.charge_net = AtomScalarMLP(feature_dim, self.hidden_dim)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments and ``kind``; ``heads.long_range_head_from_config`` rebuilds the head."""
        return {
            "kind": self.kind,
            "feature_dim": self.feature_dim,
            "sigma": self.sigma,
            "dl": self.dl,
            "neutral": self.neutral,
            "hidden_dim": self.hidden_dim,
        }

    def prepare_for_training(self, std: float = 0.05, generator: torch.Generator | None = None) -> bool:
        """Perturb a still-zero output layer (see class docstring); returns whether it did."""
        if not self.charge_net.output_is_zero():
            return False
        self.charge_net.perturb_output(std, generator)
        return True

    def charges(self, atom_features: torch.Tensor, batch: torch.Tensor, n_systems: int) -> torch.Tensor:
        """[N] latent charges in e (neutral per structure when ``neutral``)."""
        charges = self.charge_net(atom_features)
        if self.neutral:
            charges = charges - mean_per_structure(charges, batch, n_systems)[batch]
        return charges

    def forward(
        self,
        atom_features: torch.Tensor,
        positions: torch.Tensor,
        cell: torch.Tensor,
        batch: torch.Tensor,
        pbc: torch.Tensor,
        atomic_numbers: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy [B] in eV and latent charges [N] in e.

        atom_features [N, F], positions [N, 3] Å, cell [B, 3, 3] Å (rows), batch [N], pbc [B] or
        [B, 3] bool. ``atomic_numbers`` is not used; it is accepted so that every long-range head
        (see ``qeq.ChargeEquilibrationHead``) is called the same way.
        """
        charges = self.charges(atom_features, batch, cell.shape[0])
        energy = ewald_energy(
            charges, positions, cell, batch, pbc, self.sigma, self.dl, remove_self_interaction=True
        )
        return energy, charges


def _polarization_parts(
    charges: torch.Tensor,
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real and imaginary parts [B, 3] of P̃_a, atom phases θ [N, 3] and the effective cell.

    Periodic: P̃_a = Σ_i q_i exp(i θ_ia) / (2π i), θ_ia = 2π s_ia. Isolated: P̃_a = Σ_i q_i r_ia,
    θ = 0 (identity cell). In both cases P_α = Σ_a cell[a, α] P̃_a.
    """
    periodic = periodic_structures(pbc)
    cell = effective_cell(cell, periodic)
    frac = fractional_coordinates(positions, torch.linalg.inv(cell), batch)
    atom_periodic = periodic[batch][:, None]
    theta = torch.where(atom_periodic, 2 * math.pi * frac, torch.zeros_like(frac))
    real = torch.where(atom_periodic, torch.sin(theta) / (2 * math.pi), frac)
    imag = torch.where(atom_periodic, -torch.cos(theta) / (2 * math.pi), torch.zeros_like(frac))
    zeros = positions.new_zeros((cell.shape[0], 3))
    p_real = zeros.index_add(0, batch, charges[:, None] * real)
    p_imag = zeros.index_add(0, batch, charges[:, None] * imag)
    return p_real, p_imag, theta, cell


def polarization(
    charges: torch.Tensor,
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
) -> torch.Tensor:
    """[B, 3] complex dipole in e·Å from charges [N] e and positions [N, 3] Å.

    Periodic structures: P = Σ_a a_a Σ_i q_i exp(2π i s_ia) / (2π i), with a_a the lattice vectors
    (rows of cell) and s the fractional coordinates; it is invariant under lattice translations of
    any atom, and its real part tends to Σ_i q_i r_i when all s_ia are small. Isolated structures:
    the ordinary dipole Σ_i q_i r_i (imaginary part 0). Divide by the volume for a polarisation
    density.
    """
    p_real, p_imag, _, cell = _polarization_parts(charges, positions, cell, batch, pbc)
    return torch.complex(torch.einsum("ba,bad->bd", p_real, cell), torch.einsum("ba,bad->bd", p_imag, cell))


def born_effective_charges(
    charges: torch.Tensor,
    positions: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor,
    pbc: torch.Tensor,
    create_graph: bool = False,
) -> torch.Tensor:
    """[N, 3, 3] Born effective charges Z*_{i,αβ} = ∂P_α/∂r_iβ in e, by autograd.

    ``positions`` must require grad, and ``charges`` should have been computed from them (through
    the model) so that the charge response is included. For periodic structures the derivative of
    each lattice component is multiplied by exp(−i θ_ia) of the displaced atom, and the real part
    kept: Z*_{i,αβ} = Re Σ_a a_{aα} exp(−i θ_ia) ∂P̃_a/∂r_iβ, which is exactly q_i δ_αβ for fixed
    charges. Batched: 6 backward passes, however many structures.
    """
    if not positions.requires_grad:
        raise ValueError("positions must require grad to take Born effective charges by autograd")
    p_real, p_imag, theta, cell = _polarization_parts(charges, positions, cell, batch, pbc)
    dephased = []
    for a in range(3):
        (grad_real,) = torch.autograd.grad(
            p_real[:, a].sum(), positions, retain_graph=True, create_graph=create_graph
        )
        (grad_imag,) = torch.autograd.grad(
            p_imag[:, a].sum(), positions, retain_graph=True, create_graph=create_graph
        )
        angle = theta[:, a : a + 1]
        dephased.append(torch.cos(angle) * grad_real + torch.sin(angle) * grad_imag)
    per_lattice = torch.stack(dephased, dim=1)  # [N, a, β]
    return torch.einsum("nab,nad->ndb", per_lattice, cell[batch])


def impose_acoustic_sum_rule(born: torch.Tensor, batch: torch.Tensor, n_systems: int) -> torch.Tensor:
    """[N, 3, 3] Born charges with each structure's Σ_i Z*_i removed equally from its atoms.

    The periodic expression of ``born_effective_charges`` gives q_i δ exactly for fixed charges,
    but its charge-response term is measured from the displaced atom's own phase, which is not
    translation invariant in a polar cell (wurtzite ZnO: Σ_i Z*_i,zz ≠ 0). As DFPT codes do, the
    violation is then spread evenly over the atoms, so that a uniform translation carries no
    charge; for centrosymmetric crystals, where the sum vanishes already, nothing changes.
    """
    counts = torch.bincount(batch, minlength=n_systems).to(born.dtype)
    total = born.new_zeros((n_systems, 3, 3)).index_add(0, batch, born)
    return born - (total / counts[:, None, None])[batch]
