"""Relaxer defaults: the one source for the run spec (`mlip.*`), the evaluators and `mlip.relax`.

A leaf module (no imports), so that the spec can use it without loading torch.
"""

FMAX_EV_PER_A = 0.05  # convergence: largest force on an atom or cell row of the filter, eV/Å
MAX_STEPS = 300  # optimiser steps per structure
TIMEOUT_S = 300.0  # wall-clock seconds per structure, from when it joins the batch
MAX_BATCH_MEMORY_GB = 4.0  # estimated peak memory of one batched model call, GB
