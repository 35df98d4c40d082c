"""Long-range heads, by kind: build one for a model's features, or rebuild a saved one.

A head maps the backbone's final atom features to charges and adds their electrostatic energy
(``MLIPModel`` calls it with the same positions and cell that forces and stress differentiate):

- ``les``: Latent Ewald Summation (latent charges, Ewald energy; Born charges, polarisation);
- ``qeq``: charge equilibration from predicted electronegativities and element hardness (on the
  NequIP backbone, the NequIP-LR design).

Both start with a zero output layer, so an attached, untrained head leaves every number unchanged.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.heads.qeq import ChargeEquilibrationHead
from matsearch.mlip.model import MLIPModel

HEADS: dict[str, type[nn.Module]] = {
    LatentEwaldHead.kind: LatentEwaldHead,
    ChargeEquilibrationHead.kind: ChargeEquilibrationHead,
}


def long_range_head_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a long-range head from its ``config`` (``kind`` is one of HEADS)."""
    arguments = dict(config)
    kind = arguments.pop("kind", None)
    if kind not in HEADS:
        raise ValueError(f"unknown long-range head kind {kind!r}; expected one of {sorted(HEADS)}")
    return HEADS[kind](**arguments)


def attach_long_range_head(model: MLIPModel, kind: str, **options: Any) -> nn.Module:
    """A new head of `kind` on `model`'s features (on its device and dtype), set as its
    ``long_range``; `options` are the head's constructor arguments after ``feature_dim``."""
    if kind not in HEADS:
        raise ValueError(f"unknown long-range head kind {kind!r}; expected one of {sorted(HEADS)}")
    head = HEADS[kind](model.feature_dim, **options).to(device=model.device, dtype=model.dtype)
    model.long_range = head
    return head
