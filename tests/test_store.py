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
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


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
    with pytest.raises(RunStoreError, match="already holds a run; resume it \\(`matsearch resume"):
        RunStore.create(tmp_path / "run", "name: run\n", {})
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RunStoreError, match="schema 99; this matsearch reads schema 3 and upgrades schema 2"):
        RunStore.open(tmp_path / "run")


def test_failed_insert_leaves_no_half_generation(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    broken = _candidate()
    broken.status = "not-a-status"  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        store.add([_candidate(), broken], proposed_generation=0)
    assert store.candidates() == [] and not store.is_proposed(0)
    store.close()


def test_corrupted_database_is_a_clear_error(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "run", "name: run\n", {}).close()
    (tmp_path / "run" / "run.sqlite").write_bytes(b"this is no database " * 500)
    for lock in (True, False):
        with pytest.raises(RunStoreError, match="is not a readable matsearch run database"):
            RunStore.open(tmp_path / "run", lock=lock)


def test_missing_spec_is_a_clear_error(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    (tmp_path / "run" / "spec.yaml").unlink()
    with pytest.raises(RunStoreError, match=r"spec.yaml' is missing; restore"):
        store.spec_yaml()
    store.close()


def _llm_candidate(prompt: list[dict], response: str) -> Candidate:
    candidate = _candidate(1)
    candidate.origin, candidate.operator = "openai", "llm_mutate"
    candidate.extra = {"prompt": prompt, "response": response, "prompt_tokens": 10}
    return candidate


def test_llm_text_is_stored_once_per_call_and_capped(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    prompt = [{"role": "user", "content": "Propose NaCl polymorphs."}]
    small = _llm_candidate(prompt, "short answer")
    (first, second, third) = store.add(
        [_llm_candidate(prompt, "short answer"), small, _llm_candidate(prompt, "x" * 300_000)]
    )
    stored = store.get([first.id, second.id, third.id])
    assert stored[0].extra["llm_call_id"] == stored[1].extra["llm_call_id"]
    assert "response" not in stored[0].extra and stored[0].extra["prompt_tokens"] == 10
    call = store.llm_call(stored[0].extra["llm_call_id"])
    assert call == {"prompt": prompt, "response": "short answer", "response_chars": 12, "truncated": False}
    big = store.llm_call(stored[2].extra["llm_call_id"])
    assert big["truncated"] and big["response_chars"] == 300_000 and len(big["response"]) == 256 * 1024
    store.update(stored)  # writing a candidate again adds no second copy
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM llm_calls").fetchone() == (2,)
    store.close()


def test_forces_and_stress_round_trip_and_schema_2_runs_are_read_and_upgraded(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "name: run\n", {})
    (candidate,) = store.add([_candidate()], proposed_generation=0)
    candidate.status, candidate.relaxed = Status.SCORED, _nacl()
    candidate.forces = [[0.01, -0.02, 0.0]] * len(candidate.relaxed)  # eV/Å
    candidate.stress_gpa = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]
    store.update([candidate])
    (back,) = store.get([candidate.id])
    assert back.forces == candidate.forces and back.stress_gpa == candidate.stress_gpa
    store.close()

    # the same run as matsearch wrote it with schema 2: no forces or stress columns
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        db.execute("ALTER TABLE candidates DROP COLUMN forces_ev_per_a")
        db.execute("ALTER TABLE candidates DROP COLUMN stress_gpa")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with RunStore.open(tmp_path / "run", lock=False) as reader:  # read as it is, not changed
        (old,) = reader.candidates()
        assert old.forces is None and old.stress_gpa is None and old.relaxed == candidate.relaxed
        assert reader.meta()["schema_version"] == 2
    with RunStore.open(tmp_path / "run") as writer:  # a writer (resume) upgrades it in place
        assert writer.meta()["schema_version"] == 3
        (old,) = writer.candidates()
        old.forces = candidate.forces
        writer.update([old])
        assert writer.get([old.id])[0].forces == candidate.forces
