"""The evaluation stage: relax structures and compute every property the objectives need, batched,
in the process that owns the model.

- `relaxer.py`: the Relaxer protocol; `mlip_relaxer.py` (in-house, batched) and `chgnet_relaxer.py`
  (the `chgnet` package) implement it; `evaluators.py` builds one by name.
- `evaluator.py`: the Evaluator (relax, then the property scans of `bulk_modulus.py` and
  `strain_energy.py`, all candidates of a batch together).
- `executor.py`: the Executor protocol the engine talks to; `local.py` runs the Evaluator in this
  process, `ray_executor.py` in Ray actors; `executors.py` builds one by name.
"""
