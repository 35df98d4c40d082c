"""Inputs shared by the long-range head tests: a small mixed batch and smooth per-atom features."""

from __future__ import annotations

import numpy as np
import torch


def batch_of_three(seed: int = 0):
    """A cubic cell, a triclinic cell and an isolated cluster (float64; cluster cell is zero)."""
    rng = np.random.default_rng(seed)
    sizes = [4, 6, 5]
    cells = np.stack(
        [
            np.diag([4.0, 4.0, 4.0]),
            np.array([[5.0, 0.0, 0.0], [1.2, 4.6, 0.0], [-0.7, 0.9, 5.3]]),
            np.zeros((3, 3)),
        ]
    )
    positions = [rng.uniform(0, 1, size=(n, 3)) @ c for n, c in zip(sizes[:2], cells[:2], strict=True)]
    positions.append(rng.uniform(0, 5, size=(sizes[2], 3)))
    return (
        torch.tensor(np.concatenate(positions)),
        torch.tensor(cells),
        torch.tensor(np.repeat(np.arange(3), sizes)),
        torch.tensor([True, True, False]),
    )


def periodic_features(positions, cell, batch, pbc):
    """Smooth features: sin and cos of 2π × fractional (Cartesian if isolated) coordinates."""
    eye = torch.eye(3, dtype=cell.dtype).expand_as(cell)
    inverse = torch.linalg.inv(torch.where(pbc[:, None, None], cell, eye))
    frac = torch.einsum("nd,nde->ne", positions, inverse[batch])
    return torch.cat([torch.sin(2 * np.pi * frac), torch.cos(2 * np.pi * frac)], dim=1)
