"""In-house MLIP: batched interatomic potentials with published weights, relaxation, training.

Public API: :func:`load_model` -> :class:`MLIPModel` (``predict``, ``compute``, ``save``,
``as_ase_calculator``, ``energy_convention``), :func:`relax` (many structures at once: batched
FIRE + Frechet cell filter) with its :class:`RelaxSettings` (defined in ``matsearch.relax_defaults``)
and :class:`BatchedState` for the batched tensor entry point.

Rooms: ``model.py`` (the contract and the shared energy tail), ``backbones/`` (the CHGNet
architecture; the equivariant NequIP family), ``heads/`` (long-range heads, species-pair
correction), ``optimizers/`` (FIRE, L-BFGS, the batched relax loop), ``training/`` (fine-tuning),
``registry.py`` (model names) and ``files.py`` (our model files).
"""

from matsearch.mlip.inputs import UnsupportedStructure
from matsearch.mlip.model import MLIPModel
from matsearch.mlip.optimizers.relax import relax
from matsearch.mlip.registry import load_model, model_names
from matsearch.mlip.state import BatchedState
from matsearch.mlip.units import EV_PER_A3_IN_GPA
from matsearch.relax_defaults import RelaxSettings

__all__ = [
    "EV_PER_A3_IN_GPA",
    "BatchedState",
    "MLIPModel",
    "RelaxSettings",
    "UnsupportedStructure",
    "load_model",
    "model_names",
    "relax",
]
