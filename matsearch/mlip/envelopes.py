"""Smooth cutoff envelopes of a bond length: 1 well inside the cutoff, 0 beyond it.

Both keep the energy and its first derivatives continuous where a neighbour leaves the cutoff.
"""

from __future__ import annotations

import torch


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


def xplor_envelope(lengths: torch.Tensor, r_on: float, cutoff: float) -> torch.Tensor:
    """XPLOR switching function of bond lengths (Å): 1 below `r_on`, 0 at `cutoff` Å.

    s(r) = (rc² − r²)² (rc² + 2r² − 3r_on²) / (rc² − r_on²)³ between r_on and rc; value and slope
    are continuous at both ends.
    """
    r2 = lengths * lengths
    on2, cut2 = r_on * r_on, cutoff * cutoff
    switched = (cut2 - r2) ** 2 * (cut2 + 2.0 * r2 - 3.0 * on2) / (cut2 - on2) ** 3
    inside = torch.where(lengths < r_on, torch.ones_like(lengths), switched)
    return torch.where(lengths < cutoff, inside, torch.zeros_like(lengths))
