"""Basis expansions of bond lengths (Å) and bond angles (rad), with a smooth polynomial cutoff.

These are the CHGNet basis functions (Deng et al., Nat. Mach. Intell. 2023): a sine ("radial
Bessel") basis of the bond length damped by a polynomial envelope that goes to zero with its
first two derivatives at the cutoff, and a Fourier basis of the bond angle.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def polynomial_envelope(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """Smooth cutoff of a scaled distance ``x = r / r_cut``: 1 at x = 0, 0 for x >= 1.

    u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2); value, slope and
    curvature vanish at x = 1. ``exponent`` p = 0 disables the cutoff (returns ones).
    """
    if exponent == 0:
        return torch.ones_like(x)
    p = float(exponent)
    x_p = x**exponent
    value = (
        1.0 - 0.5 * (p + 1.0) * (p + 2.0) * x_p + p * (p + 2.0) * x_p * x - 0.5 * p * (p + 1.0) * x_p * x * x
    )
    return torch.where(x < 1.0, value, torch.zeros_like(x))


class RadialBessel(nn.Module):
    """Expand bond lengths r [n] (Å) into [n, num_radial] sine functions sqrt(2/rc) sin(f r/rc)/r.

    The frequencies ``f`` start at k*pi (k = 1..num_radial) and are learnable; each basis
    function is multiplied by ``polynomial_envelope(r / cutoff, envelope_exponent)``.
    """

    def __init__(self, num_radial: int, cutoff: float, envelope_exponent: int) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.envelope_exponent = int(envelope_exponent)
        self.frequencies = nn.Parameter(math.pi * torch.arange(1, num_radial + 1).float())

    def forward(self, lengths: torch.Tensor) -> torch.Tensor:
        r = lengths.unsqueeze(-1)
        scaled = r / self.cutoff
        norm = math.sqrt(2.0 / self.cutoff)
        envelope = polynomial_envelope(scaled, self.envelope_exponent)
        return envelope * (norm * torch.sin(self.frequencies * scaled) / r)


class FourierAngle(nn.Module):
    """Expand angles theta [n] (rad) into [n, 2*order+1] Fourier terms.

    Columns: 1/sqrt(2), sin(f_k theta) for k = 1..order, cos(f_k theta) for k = 1..order, all
    divided by sqrt(pi); the frequencies ``f`` start at 1..order and are learnable.
    """

    def __init__(self, order: int) -> None:
        super().__init__()
        self.order = int(order)
        self.frequencies = nn.Parameter(torch.arange(1, order + 1).float())

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        phase = angles.unsqueeze(-1) * self.frequencies
        constant = torch.full_like(angles, 1.0 / math.sqrt(2.0)).unsqueeze(-1)
        return torch.cat([constant, torch.sin(phase), torch.cos(phase)], dim=-1) / math.sqrt(math.pi)


def bond_angles(cosines: torch.Tensor) -> torch.Tensor:
    """Angles (rad) from cosines, shrunk by a factor (1 - 1e-6) so acos keeps a finite gradient."""
    return torch.acos(cosines * (1.0 - 1e-6))
