"""CHGNet's basis expansions of bond lengths (Å) and bond angles (rad), with a smooth cutoff.

These are the CHGNet basis functions (Deng et al., Nat. Mach. Intell. 2023): a sine ("radial
Bessel") basis of the bond length damped by a polynomial envelope that goes to zero with its
first two derivatives at the cutoff, and a Fourier basis of the bond angle.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from matsearch.mlip.envelopes import polynomial_envelope


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
