"""Provenance stored with every run: package versions and the scoring setup."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from matsearch.spec import RunSpec

_PACKAGES = ("matsearch", "torch", "chgnet", "pymatgen", "ase", "pyxtal", "pymoo", "numpy")


def package_versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def provenance(spec: RunSpec) -> dict[str, object]:
    """What produced a run: versions, Python, machine, MLIP backend and model."""
    return {
        "versions": package_versions(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "mlip": {"backend": spec.mlip.backend, "model": spec.mlip.model},
    }
