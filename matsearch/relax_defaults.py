"""Relaxer defaults: the one source for the run spec (`mlip.*`), the evaluators and `mlip.relax`.

A leaf module (no imports), so that the spec can use it without loading torch.
"""

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
