"""Executors by name (`EXECUTORS`, one line each); Ray is imported only when asked for."""

from __future__ import annotations

from collections.abc import Callable

from matsearch.evaluation.evaluators import build_evaluator
from matsearch.evaluation.executor import Executor
from matsearch.evaluation.local import LocalExecutor
from matsearch.spec import ExecutorSpec, MLIPSpec, Scoring


def _local(spec: ExecutorSpec, mlip: MLIPSpec, scoring: Scoring) -> Executor:
    return LocalExecutor(build_evaluator(mlip, scoring), chunk_size=mlip.batch_size)


def _ray(spec: ExecutorSpec, mlip: MLIPSpec, scoring: Scoring) -> Executor:
    from matsearch.evaluation.ray_executor import RayExecutor

    return RayExecutor(spec, mlip, scoring)


# `executor.kind` -> how to build it (the spec's Literal lists the same names; a test keeps them equal)
EXECUTORS: dict[str, Callable[[ExecutorSpec, MLIPSpec, Scoring], Executor]] = {"local": _local, "ray": _ray}


def build_executor(spec: ExecutorSpec, mlip: MLIPSpec, scoring: Scoring) -> Executor:
    """The executor the spec's `executor` section asks for, evaluating with the `mlip` backend and
    the `scoring` settings."""
    if spec.kind not in EXECUTORS:
        raise ValueError(f"unknown executor '{spec.kind}'; allowed: {', '.join(EXECUTORS)}")
    return EXECUTORS[spec.kind](spec, mlip, scoring)
