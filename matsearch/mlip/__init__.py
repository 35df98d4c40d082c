"""In-house MLIP: a batched CHGNet-architecture potential with published weights, an ASE adapter.

Public API: :func:`load_model` -> :class:`MLIPModel` (``predict``, ``compute``, ``save``,
``as_ase_calculator``), :func:`relax` (many structures at once: batched FIRE + Frechet cell
filter) and :class:`BatchedState` for the batched tensor entry point.
"""

from matsearch.mlip.inputs import UnsupportedStructure
from matsearch.mlip.model import EV_PER_A3_IN_GPA, MLIPModel, ModelConfig
from matsearch.mlip.relax import relax
from matsearch.mlip.state import BatchedState
from matsearch.mlip.weights import load_model, model_names

__all__ = [
    "EV_PER_A3_IN_GPA",
    "BatchedState",
    "MLIPModel",
    "ModelConfig",
    "UnsupportedStructure",
    "load_model",
    "model_names",
    "relax",
]
