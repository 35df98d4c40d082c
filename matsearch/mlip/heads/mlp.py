"""The small per-atom network the long-range heads share."""

from __future__ import annotations

import torch
from torch import nn


class AtomScalarMLP(nn.Module):
    """Per-atom scalar from atom features: Linear → SiLU → Linear, output layer zero-initialised."""

    def __init__(self, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        if feature_dim < 1 or hidden_dim < 1:
            raise ValueError(
                f"feature_dim and hidden_dim must be positive, got {feature_dim} and {hidden_dim}"
            )
        self.hidden = nn.Linear(feature_dim, hidden_dim)
        self.activation = nn.SiLU()
        self.output = nn.Linear(hidden_dim, 1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, atom_features: torch.Tensor) -> torch.Tensor:
        """[N, F] features → [N] scalars."""
        return self.output(self.activation(self.hidden(atom_features))).squeeze(-1)

    def output_is_zero(self) -> bool:
        """True while the output layer is exactly zero (an untrained head)."""
        return bool((self.output.weight == 0).all() and (self.output.bias == 0).all())

    def perturb_output(self, std: float, generator: torch.Generator | None = None) -> None:
        """Give the output weights N(0, std²) values (the bias stays) so that training can start."""
        with torch.no_grad():
            noise = torch.randn(self.output.weight.shape, generator=generator, dtype=torch.float64)
            self.output.weight.copy_(noise * std)
