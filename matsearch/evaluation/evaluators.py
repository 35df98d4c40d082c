"""Relaxer backends by name (`BACKENDS`, one line each), and the evaluation stage around one.
Heavy packages load on first use."""

from __future__ import annotations

from collections.abc import Callable

from matsearch.evaluation.evaluator import Evaluator
from matsearch.evaluation.relaxer import Relaxer
from matsearch.spec import MLIPSpec, Scoring


def _matsearch(spec: MLIPSpec) -> Relaxer:
    from matsearch.evaluation.mlip_relaxer import MLIPRelaxer

    return MLIPRelaxer(model_name=spec.model, device=spec.device, settings=spec.relax_settings())


def _chgnet(spec: MLIPSpec) -> Relaxer:
    from matsearch.evaluation.chgnet_relaxer import CHGNetRelaxer

    return CHGNetRelaxer(spec.relax_settings())


# `mlip.backend` -> how to build its relaxer (the spec's Literal lists the same names; a test checks)
BACKENDS: dict[str, Callable[[MLIPSpec], Relaxer]] = {"matsearch": _matsearch, "chgnet": _chgnet}


def build_relaxer(spec: MLIPSpec) -> Relaxer:
    """The Relaxer the spec's `mlip` section asks for."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"unknown mlip backend '{spec.backend}'; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[spec.backend](spec)


def build_evaluator(mlip: MLIPSpec, scoring: Scoring) -> Evaluator:
    """The evaluation stage for the spec's `mlip` backend and `scoring` settings."""
    return Evaluator(build_relaxer(mlip), scoring)
