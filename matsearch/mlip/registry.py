"""Model names: what ``load_model`` accepts besides a model file.

- Published CHGNet checkpoints read from the installed ``chgnet`` wheel
  (``backbones/chgnet/checkpoint.py``): ``chgnet-0.3.0``, ``chgnet-r2scan``.
- Models shipped inside this package (``matsearch/mlip/models/``, model cards in ``docs/models/``):
  ``sevennet-0``, ``sevennet-l3i5``, ``sevennet-mf-0`` (the published SevenNet weights, MIT, in our
  NequIP backbone; converted by ``scripts/convert_sevennet.py``, licence in ``models/NOTICE``) and
  ``chgnet-les-ft1`` (CHGNet 0.3.0 with a fitted last convolution, readout, species-pair correction
  and Latent Ewald head; ``training/train_default.py``).
- ``default``: an alias of one of them.

The name tables live in the leaf module ``matsearch/model_names.py`` (the spec reads them without torch).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from matsearch.errors import ModelError
from matsearch.mlip.backbones.chgnet.checkpoint import chgnet_checkpoint_path, load_chgnet_checkpoint
from matsearch.mlip.files import load_model_file
from matsearch.mlip.model import MLIPModel
from matsearch.model_names import ALIASES, PRETRAINED, SHIPPED, model_names

logger = logging.getLogger(__name__)
__all__ = ["load_model", "model_names", "same_model", "shipped_model_path"]


def same_model(a: str, b: str) -> bool:
    """Whether two model names (or paths) name the same model, aliases resolved."""

    def key(name: str) -> str:
        canonical = ALIASES.get(name, name)
        if canonical in PRETRAINED or canonical in SHIPPED:
            return canonical
        return str(Path(name).expanduser().resolve())

    return key(a) == key(b)


def shipped_model_path(name: str) -> Path:
    """Path of a model file shipped inside the package (``SHIPPED``)."""
    path = Path(__file__).parent / "models" / SHIPPED[name]
    if not path.is_file():
        raise ModelError(f"the shipped model {name!r} is missing from this installation ({path})")
    return path


def load_model(
    name: str = "default", device: str | None = None, dtype: torch.dtype = torch.float32
) -> MLIPModel:
    """Load a model by name (see :func:`model_names`) or from a file saved by ``MLIPModel.save``.

    ``device`` defaults to CUDA when available, else CPU; ``dtype`` is float32 or float64.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ModelError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    canonical = ALIASES.get(name, name)
    if canonical in PRETRAINED:
        model = load_chgnet_checkpoint(chgnet_checkpoint_path(canonical), canonical)
    elif canonical in SHIPPED:
        model = load_model_file(shipped_model_path(canonical))
        model.info.name = canonical
    elif Path(name).expanduser().is_file():
        model = load_model_file(Path(name).expanduser())
    else:
        raise ModelError(
            f"unknown model {name!r}; use one of {', '.join(model_names())} or the path of a "
            "file saved by MLIPModel.save"
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device=device, dtype=dtype).eval()
    logger.info("loaded MLIP %s (%d parameters) on %s", model.info.name, model.n_params, device)
    return model
