"""Executors by name; Ray is imported only when asked for."""

from __future__ import annotations

from matsearch.evaluation.evaluators import build_evaluator
from matsearch.evaluation.executor import Executor
from matsearch.evaluation.local import LocalExecutor
from matsearch.spec import ExecutorSpec, MLIPSpec, Scoring


def build_executor(spec: ExecutorSpec, mlip: MLIPSpec, scoring: Scoring) -> Executor:
    """The executor the spec's `executor` section asks for, evaluating with the `mlip` backend and
    the `scoring` settings."""
    if spec.kind == "local":
        return LocalExecutor(build_evaluator(mlip, scoring), chunk_size=mlip.batch_size)
    if spec.kind == "ray":
        from matsearch.evaluation.ray_executor import RayExecutor

        return RayExecutor(spec, mlip, scoring)
    raise ValueError(f"unknown executor '{spec.kind}'; allowed: local, ray")
