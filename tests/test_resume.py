"""kill -9 in generation 2, then resume: nothing scored is lost or scored again, and a seeded run
ends with the same population as one that was never interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from matsearch import Run, Search

SPEC = {
    "name": "resume",
    "seed": 11,
    "chemistry": {"elements": ["Na", "K", "Cl"], "max_atoms": 8, "max_elements": 2},
    "population_size": 4,
    "children_per_generation": 4,
    "generations": 3,
    "mlip": {"steps": 60, "batch_size": 1},
}


def _scored(run_dir: Path) -> dict[int, tuple[float, float]]:
    """(energy, relaxation wall time) of every relaxed candidate: re-relaxing would change the
    time. (A candidate relaxed just before the kill may be marked a duplicate after relaxation on
    resume: a new state, not a new score.)"""
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rows = db.execute(
            "SELECT id, energy_per_atom_ev, timings FROM candidates WHERE energy_per_atom_ev IS NOT NULL"
        ).fetchall()
    return {cid: (energy, json.loads(timings)["relax"]) for cid, energy, timings in rows}


def _generation_two_started(run_dir: Path) -> bool:
    if not (run_dir / "run.sqlite").exists():
        return False
    try:
        with sqlite3.connect(run_dir / "run.sqlite", timeout=1) as db:
            (n,) = db.execute(
                "SELECT COUNT(*) FROM candidates WHERE generation = 2 AND status = 'scored'"
            ).fetchone()
    except sqlite3.OperationalError:
        return False
    return n >= 1


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process runs and the run in a subprocess do the same floating-point work (torch sums in a
    different order with another thread count, and relaxations of borderline cells can diverge)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


def test_kill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    reference = Search({**SPEC, "output": str(tmp_path / "a")}).run()

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "output": str(tmp_path / "b")}))
    run_dir = tmp_path / "b" / "resume"
    process = subprocess.Popen(
        [sys.executable, "-m", "matsearch.cli", "run", str(spec_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 600
    while not _generation_two_started(run_dir):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "generation 2 never started"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _scored(run_dir)
    assert Run(run_dir).last_generation in (1, 2)  # killed in generation 2 (or just after it)

    resumed = Search.from_run_dir(run_dir).resume()

    after = _scored(run_dir)
    assert all(after[cid] == before[cid] for cid in before), "a scored candidate was scored again"
    assert set(before) <= set(after)
    assert resumed.last_generation == reference.last_generation == 3
    for generation in range(4):
        ours = [(c.id, c.formula, round(c.energy_per_atom, 5)) for c in resumed.population(generation)]
        theirs = [(c.id, c.formula, round(c.energy_per_atom, 5)) for c in reference.population(generation)]
        assert ours == theirs, f"generation {generation} differs after resume"


def _file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_copied_run_folder_resumes_in_place_and_leaves_the_original_alone(tmp_path: Path) -> None:
    spec = {**SPEC, "name": "ren_a", "output": str(tmp_path), "generations": 0}
    original = Search(spec).run().run_dir
    copy = tmp_path / "moved" / "ren_b"
    shutil.copytree(original, copy)
    stored = yaml.safe_load((copy / "spec.yaml").read_text())
    (copy / "spec.yaml").write_text(yaml.safe_dump(stored | {"generations": 1}))  # one more
    before = _file_digests(original)

    resumed = Search.from_run_dir(copy).resume()

    assert resumed.run_dir == copy and resumed.last_generation == 1
    assert Run(copy).last_generation == 1
    assert _file_digests(original) == before and Run(original).last_generation == 0
