"""Energy-only screening with a fast model: one batched single point per call, no relaxation.

CSP ranks its decorated templates this way before any is relaxed (engine), and the second model of
`matsearch uncertainty` scores relaxed structures; the model is loaded once per process, name and
device.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pymatgen.core import Structure

from matsearch.evaluation.mlip_relaxer import MLIPRelaxer
from matsearch.relax_defaults import RelaxSettings


def fast_energies(structures: Sequence[Structure], model: str, device: str | None = None) -> list[float]:
    """Energy per atom (eV/atom) of each structure as given, by `model` (a name or file that
    ``matsearch.mlip.load_model`` understands); NaN where the model fails."""
    if not structures:
        return []
    return _relaxer(model, device).single_point(list(structures))


def energy_convention(model: str, device: str | None = None) -> str:
    """What `model`'s energies mean ("mp2020" or "raw-pbe"; ``MLIPModel.energy_convention``)."""
    return _relaxer(model, device).energy_convention


@lru_cache(maxsize=2)
def _relaxer(model: str, device: str | None) -> MLIPRelaxer:
    return MLIPRelaxer(model_name=model, device=device, settings=RelaxSettings(prerelax_model=None))
