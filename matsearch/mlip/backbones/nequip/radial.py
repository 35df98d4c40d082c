"""Radial features of a bond: a Bessel basis of its length times a smooth cutoff envelope."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from matsearch.mlip.envelopes import polynomial_envelope, xplor_envelope

Envelope = Literal["polynomial", "xplor"]


class BesselEmbedding(nn.Module):
    """Bond lengths r [U] (Å) -> [U, num_basis] features (2/rc) sin(f_k r)/r · envelope(r).

    The frequencies f_k start at kπ/rc (k = 1..num_basis) and are learnable. ``envelope`` is
    "polynomial" (exponent ``polynomial_p``) or "xplor" (switching on at ``xplor_r_on`` Å).
    """

    def __init__(
        self,
        num_basis: int,
        cutoff: float,
        envelope: Envelope,
        polynomial_p: int = 6,
        xplor_r_on: float = 4.5,
    ) -> None:
        super().__init__()
        if envelope not in ("polynomial", "xplor"):
            raise ValueError(f"unknown envelope {envelope!r}; expected 'polynomial' or 'xplor'")
        if envelope == "xplor" and not 0 < xplor_r_on < cutoff:
            raise ValueError(f"xplor_r_on must lie in (0, cutoff={cutoff}) Å, got {xplor_r_on}")
        self.cutoff = float(cutoff)
        self.envelope = envelope
        self.polynomial_p = int(polynomial_p)
        self.xplor_r_on = float(xplor_r_on)
        self.frequencies = nn.Parameter(
            math.pi / cutoff * torch.arange(1, num_basis + 1, dtype=torch.float32)
        )

    def forward(self, lengths: torch.Tensor) -> torch.Tensor:
        r = lengths.unsqueeze(-1)
        basis = (2.0 / self.cutoff) * torch.sin(self.frequencies * r) / r
        if self.envelope == "xplor":
            smooth = xplor_envelope(lengths, self.xplor_r_on, self.cutoff)
        else:
            smooth = polynomial_envelope(lengths / self.cutoff, self.polynomial_p)
        return basis * smooth.unsqueeze(-1)
