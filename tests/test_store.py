"""Run store: a real SQLite file, committed on every change, one writer at a time, clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from matsearch.candidate import Candidate, Status
from matsearch.errors import RunStoreError
from matsearch.store import RunStore


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def _candidate(generation: int = 0) -> Candidate:
    return Candidate(
        id=None,
        generation=generation,
        origin="builtin",
        operator="strain",
        parents=[3, 4],
        structure=_nacl(),
    )


def test_round_trip_and_commit_on_change(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {"mlip": {"backend": "matsearch"}})
    (candidate,) = store.add([_candidate()], proposed_generation=0)
    assert candidate.id == 1
    candidate.status, candidate.relaxed = Status.SCORED, _nacl()
    candidate.energy_per_atom, candidate.e_above_hull = -3.41, 0.012
    candidate.scores = {"e_above_hull": 0.012, "deformation_energy": 0.003}
    candidate.timings = {"relax": 1.5}
    store.update([candidate])

    # another connection sees the change at once: it was committed, not buffered
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        row = db.execute(
            "SELECT status, e_above_hull_ev_per_atom, formula, parents FROM candidates WHERE id = 1"
        ).fetchone()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert row == ("scored", 0.012, "NaCl", "[3, 4]")

    (back,) = store.get([1])
    assert back.relaxed == candidate.relaxed
    assert back.scores == candidate.scores and back.parents == [3, 4]
    assert store.is_proposed(0) and not store.is_completed(0)
    store.complete_generation(0, [1], {"proposed": 1})
    assert store.population(0) == [1] and store.last_completed_generation() == 0
    assert store.meta()["mlip"] == {"backend": "matsearch"}
    frame = store.to_dataframe()
    assert frame.loc[0, "score_deformation_energy"] == 0.003
    store.close()


def test_second_writer_is_refused_and_kill_releases_the_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    RunStore.create(run_dir, "name: run\n", {}).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from matsearch.store import RunStore; s = RunStore.open({str(run_dir)!r}); "
            "print('ok', flush=True); "
            "import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ok"
    with pytest.raises(RunStoreError, match="is in use by another matsearch process"):
        RunStore.open(run_dir)
    RunStore.open(run_dir, lock=False).close()  # readers are always welcome
    holder.kill()
    holder.wait()
    RunStore.open(run_dir).close()  # the OS dropped the dead process's lock


def test_clear_errors_for_wrong_folders(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="is not a matsearch run folder"):
        RunStore.open(tmp_path)
    RunStore.create(tmp_path / "run", "name: run\n", {}).close()
    with pytest.raises(RunStoreError, match="already holds a run; use `matsearch resume"):
        RunStore.create(tmp_path / "run", "name: run\n", {})
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RunStoreError, match="has store schema 99; this matsearch reads schema 1"):
        RunStore.open(tmp_path / "run")


def test_failed_insert_leaves_no_half_generation(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    broken = _candidate()
    broken.status = "not-a-status"  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        store.add([_candidate(), broken], proposed_generation=0)
    assert store.candidates() == [] and not store.is_proposed(0)
    store.close()
