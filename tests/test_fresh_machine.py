"""README command 1 on a fresh machine: no data mirror, an empty cache, downloads off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from matsearch import Search
from matsearch.candidate import Novelty, Status
from matsearch.run import Run
from matsearch.structures.known import KnownMaterials

REPO = Path(__file__).resolve().parents[1]


def _matsearch(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MATSEARCH_OFFLINE": "1", "MATSEARCH_CACHE_DIR": str(cache), "COLUMNS": "200"}
    env.pop("MATSEARCH_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "matsearch.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`matsearch run examples/quickstart.yaml` from an empty folder; returns (run folder, cache)."""
    cwd, cache = tmp_path_factory.mktemp("fresh"), tmp_path_factory.mktemp("empty-cache")
    done = _matsearch("run", str(REPO / "examples" / "quickstart.yaml"), cwd=cwd, cache=cache)
    assert done.returncode == 0, done.stderr
    return cwd / "runs" / "quickstart", cache


def test_quickstart_runs_on_shipped_data_only(quickstart: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, cache = quickstart
    done = _matsearch("status", str(run_dir), "--json", cwd=tmp_path, cache=cache)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["last_generation"] == 3
    assert len(status["candidates"]) >= 5
    assert all(isinstance(c["scores"]["e_above_hull"], float) for c in status["candidates"])
    assert list(cache.rglob("*")) == []  # nothing downloaded, nothing cached
    meta = Run(run_dir).meta()
    assert meta["known_materials"]["n_structures"] == 33_548


def test_reported_novelty_equals_an_independent_structure_matcher_check(
    quickstart: tuple[Path, Path],
) -> None:
    """Every relaxed child: 'known' exactly when StructureMatcher() (default tolerances) fits one of
    the shipped MP-20 structures of its formula; seeds are their own known material."""
    run = Run(quickstart[0])
    known = KnownMaterials.load()
    matcher = StructureMatcher()
    scored = run.candidates(Status.SCORED)
    assert len(scored) >= 10
    for candidate in scored:
        if candidate.operator == "seed":
            assert (candidate.novelty, candidate.known_id) == (Novelty.KNOWN, candidate.extra["material_id"])
            continue
        rows = known.rows(candidate.relaxed.composition.reduced_formula)
        fits = [r for r in rows if matcher.fit(candidate.relaxed, known.structure(r))]
        assert (candidate.novelty == Novelty.KNOWN) == bool(fits), candidate.id
        if not rows:  # a composition the run's hull lists is a new structure, never a new composition
            hull_lists = "hull_entry" in candidate.extra
            assert candidate.novelty == (Novelty.NEW_STRUCTURE if hull_lists else Novelty.NEW_COMPOSITION)
    for generation, metrics in run.generation_metrics().items():
        children = [c for c in scored if c.generation == generation]
        assert metrics["n_novel"] == sum(c.novelty != Novelty.KNOWN for c in children)


def test_same_candidates_with_and_without_the_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror_dir: Path
) -> None:
    """The defaults read only the shipped data, so a mirror changes nothing."""
    spec = {
        "name": "same",
        "seed": 4,
        "chemistry": {"elements": ["Na", "K", "Cl"], "max_atoms": 8},
        "population_size": 4,
        "children_per_generation": 4,
        "generations": 1,
        "mlip": {"steps": 60},
    }
    without = Search({**spec, "output": str(tmp_path / "without")}).run().to_dataframe()
    monkeypatch.setenv("MATSEARCH_DATA_DIR", str(mirror_dir))
    with_mirror = Search({**spec, "output": str(tmp_path / "with")}).run().to_dataframe()
    columns = [
        "id",
        "operator",
        "status",
        "formula",
        "energy_per_atom_ev",
        "e_above_hull_ev_per_atom",
        "known_id",
    ]
    assert with_mirror[columns].equals(without[columns])


def test_no_two_listed_candidates_are_the_same_material(
    quickstart: tuple[Path, Path], tmp_path: Path
) -> None:
    """What status, best(), export and the report list is unique after relaxation."""
    run = Run(quickstart[0])
    listed = run.best()
    assert len(listed) >= 10
    matcher = StructureMatcher()
    for i, a in enumerate(listed):
        for b in listed[i + 1 :]:
            if a.formula == b.formula:
                assert not matcher.fit(a.relaxed, b.relaxed), (a.id, b.id)
    duplicates = run.candidates(Status.DUPLICATE)
    relaxed_into = [c for c in duplicates if c.duplicate_of is not None]
    assert all(c.reason == f"relaxed into the structure of candidate {c.duplicate_of}" for c in relaxed_into)
    exported = _matsearch(
        "export",
        str(quickstart[0]),
        "--out",
        str(tmp_path / "x"),
        "-f",
        "csv",
        cwd=tmp_path,
        cache=quickstart[1],
    )
    assert exported.returncode == 0, exported.stderr
    rows = (tmp_path / "x" / "candidates.csv").read_text().splitlines()[1:]
    new_ids = {c.id for c in run.best(new_only=True)}
    assert {int(row.split(",")[0]) for row in rows} == new_ids  # new materials only, by default
