"""Learned species-pair energy correction: E_pair = Σ_bonds Σ_k c_k(Z_a, Z_b) φ_k(r).

A smooth pair term on the atom graph's bonds (r < the atom cutoff): φ_k are the CHGNet sine
basis functions with the polynomial envelope (fixed frequencies kπ), and the coefficients c_k of
a species pair come from an MLP of symmetric combinations of learned element embeddings, so pairs
never seen in training still get a (shrunk) correction. The output layer starts at zero, so an
untrained correction adds exactly 0 eV. It gives the short-range curvature of the energy surface
a direct, per-chemistry handle (bulk moduli), which the frozen backbone's readout lacks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from matsearch.mlip.envelopes import polynomial_envelope


def species_pairs(z_a: torch.Tensor, z_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique sorted species pairs [P, 2] of bonds and each bond's index [U] into them."""
    low, high = torch.minimum(z_a, z_b), torch.maximum(z_a, z_b)
    keys, inverse = torch.unique(low * 1024 + high, return_inverse=True)  # 1-D unique: fast
    return torch.stack([keys // 1024, keys % 1024], dim=1), inverse


class PairCorrection(nn.Module):
    """Pair energies (eV) from bond lengths (Å) and the atomic numbers at both ends."""

    kind = "pair"

    def __init__(
        self,
        num_basis: int = 8,
        cutoff: float = 6.0,
        envelope_exponent: int = 8,
        embedding_dim: int = 16,
        hidden_dim: int = 32,
        max_atomic_number: int = 94,
    ) -> None:
        super().__init__()
        if num_basis < 1 or not cutoff > 0:
            raise ValueError(f"num_basis must be >= 1 and cutoff > 0 Å, got {num_basis} and {cutoff}")
        self.num_basis = num_basis
        self.cutoff = float(cutoff)
        self.envelope_exponent = int(envelope_exponent)
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.max_atomic_number = max_atomic_number
        self.embedding = nn.Embedding(max_atomic_number, embedding_dim)
        nn.init.normal_(self.embedding.weight, std=1.0)
        self.hidden = nn.Linear(2 * embedding_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, num_basis)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        self.register_buffer("frequencies", math.pi * torch.arange(1, num_basis + 1, dtype=torch.float32))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments and ``kind``."""
        return {
            "kind": self.kind,
            "num_basis": self.num_basis,
            "cutoff": self.cutoff,
            "envelope_exponent": self.envelope_exponent,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "max_atomic_number": self.max_atomic_number,
        }

    def coefficients(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """[P, num_basis] coefficients (eV·Å) of species pairs (atomic numbers, symmetric)."""
        e_a, e_b = self.embedding(z_a - 1), self.embedding(z_b - 1)
        hidden = torch.nn.functional.silu(self.hidden(torch.cat([e_a + e_b, e_a * e_b], dim=-1)))
        return self.output(hidden)

    def basis(self, lengths: torch.Tensor) -> torch.Tensor:
        """[U, num_basis] sin(kπ r/rc)/r · envelope(r/rc), 1/Å."""
        x = lengths / self.cutoff
        envelope = polynomial_envelope(x, self.envelope_exponent)
        return torch.sin(self.frequencies * x.unsqueeze(-1)) / lengths.unsqueeze(-1) * envelope.unsqueeze(-1)

    def forward(
        self,
        lengths: torch.Tensor,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        bond_system: torch.Tensor,
        n_systems: int,
    ) -> torch.Tensor:
        """[n_systems] eV: Σ over undirected bonds (each counted once) of the pair energy."""
        unique, inverse = species_pairs(z_a, z_b)
        return self.energy_from_basis(unique, inverse, self.basis(lengths), bond_system, n_systems)

    def energy_from_basis(
        self,
        unique: torch.Tensor,
        inverse: torch.Tensor,
        basis: torch.Tensor,
        bond_system: torch.Tensor,
        n_systems: int,
    ) -> torch.Tensor:
        """[n_systems] eV from precomputed species pairs (``species_pairs``) and bond basis [U, K]."""
        coefficients = self.coefficients(unique[:, 0], unique[:, 1]).to(basis.dtype)
        bond_energy = (coefficients[inverse] * basis).sum(dim=-1)
        return basis.new_zeros(n_systems).index_add(0, bond_system, bond_energy)

    def output_is_zero(self) -> bool:
        """True while the output layer is exactly zero (an untrained correction)."""
        return bool((self.output.weight == 0).all() and (self.output.bias == 0).all())
