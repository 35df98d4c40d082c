"""The backbones, by the kind their model files name (``MLIPModel.kind``)."""

from matsearch.mlip.backbones.chgnet.model import ChgnetModel
from matsearch.mlip.backbones.nequip.model import NequipModel
from matsearch.mlip.model import MLIPModel

BACKBONES: dict[str, type[MLIPModel]] = {ChgnetModel.kind: ChgnetModel, NequipModel.kind: NequipModel}
