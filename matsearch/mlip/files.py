"""Our self-describing model files: read, check and rebuild the model they describe.

A model file (``MLIPModel.save``) is a ``torch.save`` dict: ``format`` ("matsearch-mlip"),
``format_version``, ``backbone`` (a kind in ``backbones.BACKBONES``; version 3, earlier files are
CHGNet), ``config`` (the backbone's config arguments), ``energy_convention`` (version 3; earlier
files are "mp2020"), ``state_dict``, ``long_range`` (the head's ``config`` and ``state_dict``, or
None), ``pair_correction`` (likewise; version 2) and ``info`` (name, source). They load with
``weights_only=True``: reading a file runs no code from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from matsearch.errors import ModelError
from matsearch.mlip.backbones import BACKBONES
from matsearch.mlip.heads import long_range_head_from_config
from matsearch.mlip.heads.pair import PairCorrection
from matsearch.mlip.model import FILE_FORMAT, MLIPModel, ModelInfo

READABLE_FORMAT_VERSIONS = (1, 2, 3)  # 2 added ``pair_correction``, 3 ``backbone`` and ``energy_convention``


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The dictionary saved in a matsearch model file, checked for format, version and backbone."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelError(
            f"cannot read model file {path} ({type(exc).__name__}: {first_line}); "
            "give a file saved by MLIPModel.save or `matsearch mlip finetune`"
        ) from exc
    if not isinstance(saved, dict) or saved.get("format") != FILE_FORMAT:
        raise ModelError(f"{path} is not a matsearch model file (saved by MLIPModel.save)")
    version = saved.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise ModelError(
            f"{path} has model file format version {version}; this matsearch reads versions "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}"
        )
    kind = saved.get("backbone", "chgnet")
    if kind not in BACKBONES:
        raise ModelError(
            f"{path} has a backbone of unknown kind {kind!r}; this matsearch knows {sorted(BACKBONES)}"
        )
    return saved


def check_model_file(path: str | Path) -> None:
    """Raise ModelError unless `path` is a readable matsearch model file of a format version this
    matsearch reads (the file's tensors are read; no model is built)."""
    read_model_file(path)


def load_model_file(path: str | Path) -> MLIPModel:
    """Rebuild the model a file written by :meth:`MLIPModel.save` describes (on the CPU)."""
    saved = read_model_file(path)
    backbone = BACKBONES[saved.get("backbone", "chgnet")]
    model = backbone(
        backbone.config_class(**saved["config"]), energy_convention=saved.get("energy_convention", "mp2020")
    )
    model.load_state_dict(model.upgrade_state_dict(saved["state_dict"]))
    if saved.get("long_range") is not None:
        head = long_range_head_from_config(saved["long_range"]["config"])
        head.load_state_dict(saved["long_range"]["state_dict"])
        model.long_range = head
    if saved.get("pair_correction") is not None:
        arguments = dict(saved["pair_correction"]["config"])
        if arguments.pop("kind", None) != PairCorrection.kind:
            raise ModelError(
                f"{path} has a pair correction of unknown kind; expected {PairCorrection.kind!r}"
            )
        pair = PairCorrection(**arguments)
        pair.load_state_dict(saved["pair_correction"]["state_dict"])
        model.pair_correction = pair
    info = saved.get("info", {})
    model.info = ModelInfo(name=info.get("name", Path(path).stem), source=str(path))
    return model
