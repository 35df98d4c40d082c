"""Checks of the environment a spec needs, made before the run folder is created: each LLM
proposer's templates, package, API key and model, and the Ray package for `executor.kind: ray`.
(`Search.run` also loads the reference data and custom functions before creating the folder.)"""

from __future__ import annotations

import importlib.util

from matsearch.errors import SpecError
from matsearch.proposers.registry import check_proposer
from matsearch.spec import RunSpec


def check_environment(spec: RunSpec) -> None:
    """Raise a MatsearchError, one sentence naming the spec key, for the first problem found."""
    for index, proposer in enumerate(spec.proposers):
        check_proposer(proposer, index)
    if spec.executor.kind == "ray" and importlib.util.find_spec("ray") is None:
        raise SpecError(
            "executor.kind 'ray' needs the ray package; install it with pip install 'matsearch[ray]'"
        )
