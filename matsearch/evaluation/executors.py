"""Executors by name; Ray is imported only when asked for."""

from __future__ import annotations

from matsearch.evaluation.executor import Executor
from matsearch.evaluation.local import LocalExecutor
from matsearch.evaluation.relaxers import build_relaxer
from matsearch.spec import ExecutorSpec, MLIPSpec


def build_executor(spec: ExecutorSpec, mlip: MLIPSpec) -> Executor:
    """The executor the spec's `executor` section asks for, relaxing with the `mlip` settings."""
    if spec.kind == "local":
        return LocalExecutor(build_relaxer(mlip), chunk_size=mlip.batch_size)
    if spec.kind == "ray":
        from matsearch.evaluation.ray_executor import RayExecutor

        return RayExecutor(spec, mlip)
    raise ValueError(f"unknown executor '{spec.kind}'; allowed: local, ray")
