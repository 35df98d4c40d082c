"""matsearch: generative materials discovery with LLM/evolutionary proposals and a batched MLIP."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Candidate", "Flag", "Novelty", "Run", "RunSpec", "Search", "Status", "fitness", "load_spec"]

if TYPE_CHECKING:
    from matsearch.candidate import Candidate, Flag, Novelty, Status
    from matsearch.engine import Search
    from matsearch.run import Run
    from matsearch.scoring.custom import register_fitness as fitness
    from matsearch.spec import RunSpec, load_spec


def __getattr__(name: str):
    """Import the public API lazily so that `import matsearch` stays light (no torch, no I/O)."""
    if name == "Search":
        from matsearch.engine import Search

        return Search
    if name == "Run":
        from matsearch.run import Run

        return Run
    if name in ("RunSpec", "load_spec"):
        from matsearch import spec

        return getattr(spec, name)
    if name == "fitness":
        from matsearch.scoring.custom import register_fitness

        return register_fitness
    if name in ("Candidate", "Flag", "Novelty", "Status"):
        from matsearch import candidate

        return getattr(candidate, name)
    raise AttributeError(f"module 'matsearch' has no attribute '{name}'")
