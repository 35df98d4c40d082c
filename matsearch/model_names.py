"""Names of the models `mlip.load_model` knows (besides a model file), in a leaf module that
imports nothing, so that the spec can tell a name from a file path without loading torch.

- ``PRETRAINED``: published CHGNet checkpoints, read from the installed ``chgnet`` wheel
  (``mlip/backbones/chgnet/checkpoint.py``); name -> path inside the wheel.
- ``SHIPPED``: models inside this package (``matsearch/mlip/models/``, model cards in
  ``docs/models/``); name -> file name.
- ``ALIASES``: another name for one of them.
"""

PRETRAINED: dict[str, str] = {
    "chgnet-0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "chgnet-r2scan": "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}
SHIPPED: dict[str, str] = {
    "chgnet-les-ft1": "chgnet-les-ft1.pt",
    "sevennet-0": "sevennet-0.pt",
    "sevennet-l3i5": "sevennet-l3i5.pt",
    "sevennet-mf-0": "sevennet-mf-0.pt",
}
ALIASES: dict[str, str] = {"default": "sevennet-0"}


def model_names() -> list[str]:
    """Valid model names for `mlip.load_model` (besides a path to a saved model file)."""
    return [*ALIASES, *PRETRAINED, *SHIPPED]
