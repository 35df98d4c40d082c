"""Checks of what a spec names, made before the run folder is created (`spec.py` checks shapes
only): model files, the hull reference file and a charge-balanced CSP target (`check_inputs`);
each LLM proposer's templates, package, API key and model, and the Ray package for
`executor.kind: ray` (`check_environment`). `Search.run` also loads the reference data and custom
functions before creating the folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from matsearch.data import HULL_REFERENCES
from matsearch.errors import ModelError, SpecError
from matsearch.mlip.files import check_model_file
from matsearch.model_names import model_names
from matsearch.proposers.registry import check_proposer
from matsearch.spec import RunSpec
from matsearch.structures.validity import is_charge_balanced


def check_inputs(spec: RunSpec) -> None:
    """The files, models and chemistry a spec names: raise SpecError naming the key, one sentence."""
    if spec.mlip.backend == "matsearch":
        for key in ("model", "prerelax"):
            name = getattr(spec.mlip, key)
            if name is None or name in model_names():
                continue
            path = Path(name).expanduser()
            if not path.is_file():
                raise SpecError(
                    f"invalid spec: 'mlip': {key} '{name}' is neither a model name "
                    f"({', '.join(model_names())}) nor an existing model file"
                )
            try:
                check_model_file(path)  # header and tensors; the model is built only where it runs
            except ModelError as exc:
                raise SpecError(f"invalid spec: 'mlip': {exc}") from None
    hull = spec.reference.hull
    if hull not in HULL_REFERENCES and not Path(hull).expanduser().is_file():
        raise SpecError(
            f"invalid spec: 'reference.hull': '{hull}' is neither a known reference "
            f"({', '.join(HULL_REFERENCES)}) nor an existing CSV/JSON file of formation energies"
        )
    target = spec.task.target_composition
    if target is not None and spec.validity.charge_neutrality and not is_charge_balanced(target):
        raise SpecError(
            f"invalid spec: task.target '{spec.task.target}' has no charge-balanced oxidation "
            "states, so validity would reject every candidate; fix the target or set "
            "validity.charge_neutrality: false"
        )


def check_environment(spec: RunSpec) -> None:
    """Raise a MatsearchError, one sentence naming the spec key, for the first problem found."""
    check_inputs(spec)
    for index, proposer in enumerate(spec.proposers):
        check_proposer(proposer, index)
    if spec.executor.kind == "ray" and importlib.util.find_spec("ray") is None:
        raise SpecError(
            "executor.kind 'ray' needs the ray package; install it with pip install 'matsearch[ray]'"
        )
