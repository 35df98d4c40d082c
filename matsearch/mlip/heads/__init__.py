"""Long-range heads by kind: rebuild a saved head from its ``config``."""

from __future__ import annotations

from typing import Any

from torch import nn

from matsearch.mlip.heads.les import LatentEwaldHead
from matsearch.mlip.heads.qeq import ChargeEquilibrationHead


def long_range_head_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a long-range head from its ``config`` (``kind`` is "les" or "qeq")."""
    heads: dict[str, type[nn.Module]] = {
        LatentEwaldHead.kind: LatentEwaldHead,
        ChargeEquilibrationHead.kind: ChargeEquilibrationHead,
    }
    arguments = dict(config)
    kind = arguments.pop("kind", None)
    if kind not in heads:
        raise ValueError(f"unknown long-range head kind {kind!r}; expected one of {sorted(heads)}")
    return heads[kind](**arguments)
