"""Shared fixtures. Every test runs as on a fresh machine: no data mirror, an empty download cache
and downloads off (MATSEARCH_OFFLINE=1), so the defaults must work from the data shipped in the
package. Tests that need mirror-only files (large or test-only datasets from ../shared/data) ask
for `mirror_dir` (its path) or `use_mirror` (MATSEARCH_DATA_DIR set to it for one test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("MATSEARCH_TEST_MIRROR", REPO.parent / "shared" / "data"))

os.environ.pop("MATSEARCH_DATA_DIR", None)
os.environ["MATSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="matsearch-test-cache-")
os.environ["MATSEARCH_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The local dataset mirror; tests that need it are skipped with a reason where it is absent."""
    if not MIRROR.is_dir():
        pytest.skip(f"data mirror {MIRROR} not found; set MATSEARCH_TEST_MIRROR")
    return MIRROR


@pytest.fixture
def use_mirror(monkeypatch: pytest.MonkeyPatch, mirror_dir: Path) -> Path:
    """MATSEARCH_DATA_DIR points at the mirror for this test only."""
    monkeypatch.setenv("MATSEARCH_DATA_DIR", str(mirror_dir))
    return mirror_dir


# --- tiny real runs for status and report tests (session-wide: each costs seconds of MLIP relaxations)

_TINY = {
    "seed": 3,
    "population_size": 3,
    "children_per_generation": 3,
    "generations": 1,
    "mlip": {"steps": 40},
}


@pytest.fixture(scope="session")
def generate_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-generation Na-Cl search on the default objective (e_above_hull). With one generation
    every child (a crossover of two rock-salt parents) relaxed back into rock salt, a duplicate,
    leaving the report's lineage nothing to draw."""
    from matsearch import Search

    spec = {**_TINY, "generations": 2, "name": "generate", "output": str(tmp_path_factory.mktemp("runs"))}
    spec["chemistry"] = {"systems": ["Na-Cl"], "max_atoms": 6}
    return Search(spec).run().run_dir


@pytest.fixture(scope="session")
def bulk_modulus_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Pareto run (e_above_hull, bulk_modulus) scored against a user hull file given relative to
    the spec file, in the `reference.hull: file` style (formula, formation_energy_per_atom in eV/atom)."""
    import yaml

    from matsearch import Search

    folder = tmp_path_factory.mktemp("bulk")
    (folder / "my_hull.csv").write_text(
        "material_id,formula,formation_energy_per_atom\nm-1,Mg,0.0\nm-2,O2,0.0\nm-3,MgO,-3.05\nm-4,MgO2,-2.2\n"
    )
    spec = {
        **_TINY,
        "name": "bulk",
        "output": str(folder / "runs"),
        "chemistry": {"systems": ["Mg-O"], "max_atoms": 6},
        "reference": {"hull": "my_hull.csv"},
        "scoring": {"bulk_modulus": {"n_points": 5, "steps": 30}},
        "objectives": [
            {"name": "e_above_hull", "direction": "min"},
            {"name": "bulk_modulus", "direction": "max"},
        ],
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return Search(folder / "spec.yaml").run().run_dir


@pytest.fixture(scope="session")
def csp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CSP of NaCl in cells of up to 4 atoms from random starts, with rock salt as the known
    structure (found in generation 0). Two-atom cells were too few: every crossover child could
    relax into rock salt, leaving no child with parents for the report's lineage."""
    from pymatgen.core import Lattice, Structure

    from matsearch import Search

    folder = tmp_path_factory.mktemp("csp")
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    rocksalt.to(filename=str(folder / "NaCl.cif"))
    spec = {
        **_TINY,
        "seed": 1,
        "name": "csp",
        "output": str(folder / "runs"),
        "population_size": 4,
        "children_per_generation": 4,
        "mlip": {"steps": 100},
        "chemistry": {"elements": ["Na", "Cl"], "max_atoms": 4},
        "task": {
            "kind": "csp",
            "target": "NaCl",
            "known_structure": str(folder / "NaCl.cif"),
            "template_share": 0.0,  # random starts only (tests/test_csp_templates.py runs templates)
            "template_operator_share": 0.0,
        },
        "objectives": [{"name": "energy_per_atom", "direction": "min"}],
    }
    return Search(spec).run().run_dir


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """Runs `python -m matsearch.cli ARGS...` as a user would and returns the finished process
    (text output, wide terminal so tables are not wrapped)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "matsearch.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "200"},
        )

    return run
