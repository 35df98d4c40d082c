"""Relaxer settings: the defaults and `RelaxSettings`, the one record the run spec (`mlip.*`) builds
and the relaxers and `mlip.relax` take.

A leaf module (no matsearch imports), so that the spec can use it without loading torch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

FMAX_EV_PER_A = 0.05  # convergence: largest force on an atom or cell row of the filter, eV/Å
MAX_STEPS = 300  # optimiser steps per structure
TIMEOUT_S = 300.0  # wall-clock seconds per structure, from when it joins the batch
MAX_BATCH_MEMORY_GB = 4.0  # estimated peak memory of one batched model call, GB
BATCH_ATOMS = 1024  # most atoms in one batched model call
PRERELAX_MODEL = "chgnet-0.3.0"  # the fast model of a two-fidelity relaxation (benchmarks/bench_prerelax.py)
PRERELAX_FMAX_EV_PER_A = 0.1  # where the fast model of a two-fidelity relaxation hands over, eV/Å

# Fixed-cell L-BFGS (``mlip.optimizers.lbfgs`` and ASE's LBFGS in ``evaluation.ase_fixed_cell``), with
# ASE's names. ASE's default alpha is 70; 30 took fewer steps on the bulk-modulus scans of
# examples/stable_stiff.yaml (253 vs 356 with ASE's LBFGS; benchmarks/RESULTS.md).
LBFGS_ALPHA_EV_PER_A2 = 30.0  # initial Hessian guess, eV/Å²
LBFGS_MAX_STEP_A = 0.2  # largest displacement of one atom in one step, Å
LBFGS_MEMORY = 20  # position/force changes remembered per system


@dataclass(frozen=True)
class RelaxSettings:
    """How structures are relaxed; every bad value raises ValueError in one sentence.

    `mlip.relax` reads fmax, steps, timeout_s, batch_atoms and max_batch_memory_gb; the two
    prerelax fields are the two-fidelity relaxation of `evaluation.MLIPRelaxer`, and the `chgnet`
    backend reads only fmax, steps and timeout_s.
    """

    fmax: float = FMAX_EV_PER_A  # convergence on every atom and cell row of the filter, eV/Å
    steps: int = MAX_STEPS  # at most this many optimiser steps per structure
    timeout_s: float | None = TIMEOUT_S  # wall-clock s per structure from when it joins; None: no limit
    batch_atoms: int = BATCH_ATOMS  # atom budget of one batched model call; a larger structure runs alone
    max_batch_memory_gb: float = MAX_BATCH_MEMORY_GB  # estimated peak memory of one model call, GB
    prerelax_model: str | None = PRERELAX_MODEL  # fast model (name or file) relaxing first; None: none
    prerelax_fmax: float = PRERELAX_FMAX_EV_PER_A  # where the fast model hands over, eV/Å

    def __post_init__(self) -> None:
        if not _positive(self.fmax):
            raise ValueError(f"fmax must be a positive number of eV/Å, got {self.fmax}")
        if not _whole(self.steps) or self.steps < 0:
            raise ValueError(f"steps must be a whole number, zero or more, got {self.steps}")
        if self.timeout_s is not None and not _positive(self.timeout_s):
            raise ValueError(f"timeout_s must be a positive number of seconds or None, got {self.timeout_s}")
        if not _whole(self.batch_atoms) or self.batch_atoms < 1:
            raise ValueError(f"batch_atoms must be a whole number, at least 1, got {self.batch_atoms}")
        if not _positive(self.max_batch_memory_gb):
            raise ValueError(
                f"max_batch_memory_gb must be a positive number of GB, got {self.max_batch_memory_gb}"
            )
        if self.prerelax_model is not None and not (
            isinstance(self.prerelax_model, str) and self.prerelax_model.strip()
        ):
            raise ValueError(
                f"prerelax_model must be a model name or file, or None, got {self.prerelax_model!r}"
            )
        if not _positive(self.prerelax_fmax):
            raise ValueError(f"prerelax_fmax must be a positive number of eV/Å, got {self.prerelax_fmax}")


def _positive(value: object) -> bool:
    """A finite real number above zero (not a bool)."""
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _whole(value: object) -> bool:
    """An integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
