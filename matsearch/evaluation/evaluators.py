"""Relaxer backends by name, and the evaluation stage around one. Heavy packages load on first use."""

from __future__ import annotations

from matsearch.evaluation.evaluator import Evaluator
from matsearch.evaluation.relaxer import Relaxer
from matsearch.spec import MLIPSpec, Scoring


def build_relaxer(spec: MLIPSpec) -> Relaxer:
    """The Relaxer the spec's `mlip` section asks for."""
    if spec.backend == "matsearch":
        from matsearch.evaluation.mlip_relaxer import MLIPRelaxer

        return MLIPRelaxer(
            model_name=spec.model,
            device=spec.device,
            fmax=spec.fmax,
            steps=spec.steps,
            timeout_s=spec.timeout_s,
            batch_atoms=spec.batch_atoms,
            max_batch_memory_gb=spec.max_batch_memory_gb,
            prerelax_model=spec.prerelax,
            prerelax_fmax=spec.prerelax_fmax,
        )
    if spec.backend == "chgnet":
        from matsearch.evaluation.chgnet_relaxer import CHGNetRelaxer

        return CHGNetRelaxer(fmax=spec.fmax, steps=spec.steps, timeout_s=spec.timeout_s)
    raise ValueError(f"unknown mlip backend '{spec.backend}'; allowed: matsearch, chgnet")


def build_evaluator(mlip: MLIPSpec, scoring: Scoring) -> Evaluator:
    """The evaluation stage for the spec's `mlip` backend and `scoring` settings."""
    return Evaluator(build_relaxer(mlip), scoring)
