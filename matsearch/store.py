"""Run store: one embedded SQLite database (WAL) per run in runs/<name>/run.sqlite.

Every candidate is written the moment its state changes, so a killed run loses nothing that was
scored. A lock file (fcntl) keeps two processes from driving the same run; the OS drops the lock
when a process dies, even by `kill -9`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from matsearch.candidate import Candidate, Flag, Novelty, Status
from matsearch.errors import RunStoreError
from matsearch.structures.codec import structure_from_json, structure_to_json

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# Older schemas this version upgrades in place when it opens a run for writing (and reads as they
# are otherwise, the absent columns as NULL): the candidate columns schema N + 1 added to N.
_ADDED_COLUMNS: dict[int, tuple[str, ...]] = {
    2: ("forces_ev_per_a", "stress_gpa"),  # forces (eV/Å) and stress (GPa) at the relaxed structure
}
_MIGRATIONS = {
    version: tuple(f"ALTER TABLE candidates ADD COLUMN {column} TEXT" for column in columns)
    for version, columns in _ADDED_COLUMNS.items()
}
DB_NAME = "run.sqlite"
SPEC_NAME = "spec.yaml"
LOG_NAME = "run.log"

# One row per LLM call (prompt and answer), referenced from the candidates made from it by
# extra["llm_call_id"]; texts longer than MAX_LLM_TEXT_CHARS are cut and the cut is recorded.
_LLM_CALLS_TABLE = """
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    response_chars INTEGER NOT NULL,
    truncated INTEGER NOT NULL
)
"""
MAX_LLM_TEXT_CHARS = 256 * 1024  # characters kept of a response and of each prompt message
_LLM_TEXT_KEYS = ("prompt", "response")

# One row per ingested DFT calculation (matsearch.dft.ingest), next to the candidate's MLIP values and
# never over them. Energies eV/atom, forces eV/Å, stress GPa (ASE sign); `frames` is a JSON list of
# every ionic step {structure, energy_ev (per cell), forces, stress_gpa}; `digest` (sha256 of the
# file) makes ingesting the same result twice a no-op.
_DFT_TABLE = """
CREATE TABLE IF NOT EXISTS dft_results (
    id INTEGER PRIMARY KEY,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id),
    digest TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    matched_by TEXT NOT NULL,
    run_type TEXT NOT NULL,
    hubbards TEXT NOT NULL,
    converged INTEGER NOT NULL,
    comparable INTEGER NOT NULL,
    note TEXT,
    energy_per_atom_ev REAL NOT NULL,
    corrected_energy_per_atom_ev REAL,
    formation_energy_ev_per_atom REAL,
    e_above_hull_ev_per_atom REAL,
    structure TEXT NOT NULL,
    forces_ev_per_a TEXT,
    stress_gpa TEXT,
    frames TEXT NOT NULL,
    ingested_at REAL NOT NULL
)
"""
DFT_COLUMNS = (
    "candidate_id", "digest", "source", "matched_by", "run_type", "hubbards", "converged", "comparable",
    "note", "energy_per_atom_ev", "corrected_energy_per_atom_ev", "formation_energy_ev_per_atom",
    "e_above_hull_ev_per_atom", "structure", "forces_ev_per_a", "stress_gpa", "frames",
)  # fmt: skip
_JSON_DFT_COLUMNS = ("hubbards", "forces_ev_per_a", "stress_gpa", "frames")

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    origin TEXT NOT NULL,
    operator TEXT NOT NULL,
    parents TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    formula TEXT,
    n_atoms INTEGER,
    structure TEXT,
    relaxed TEXT,
    energy_per_atom_ev REAL,
    initial_energy_per_atom_ev REAL,
    e_above_hull_ev_per_atom REAL,
    converged INTEGER,
    relax_steps INTEGER,
    novelty TEXT,
    known_id TEXT,
    flags TEXT NOT NULL,
    duplicate_of INTEGER,
    scores TEXT NOT NULL,
    timings TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    forces_ev_per_a TEXT,
    stress_gpa TEXT
);
CREATE INDEX IF NOT EXISTS candidates_generation ON candidates (generation, status);
CREATE TABLE IF NOT EXISTS population (
    generation INTEGER NOT NULL,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id),
    rank INTEGER NOT NULL,
    PRIMARY KEY (generation, candidate_id)
);
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY,
    proposed_at REAL,
    completed_at REAL,
    metrics TEXT NOT NULL DEFAULT '{}'
);
"""
    + _LLM_CALLS_TABLE
    + ";"
    + _DFT_TABLE
)


_COLUMNS = (
    "id, generation, origin, operator, parents, status, reason, formula, n_atoms, structure, relaxed, "
    "energy_per_atom_ev, initial_energy_per_atom_ev, e_above_hull_ev_per_atom, converged, "
    "relax_steps, novelty, known_id, flags, duplicate_of, scores, timings, extra, forces_ev_per_a, stress_gpa"
)


class RunStore:
    """The run's database. Use `RunStore.create` for a new run and `RunStore.open` to resume or read."""

    def __init__(self, run_dir: Path, *, lock: bool) -> None:
        self.run_dir = run_dir
        self._lock_file = None
        self._db: sqlite3.Connection | None = None
        if lock:
            self._lock_file = open(run_dir / ".lock", "w")  # noqa: SIM115 - held for the store's life
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                raise RunStoreError(
                    f"run '{run_dir}' is in use by another matsearch process; wait for it or stop it"
                ) from None
        self._write_lock = threading.Lock()
        self._select = _COLUMNS  # what a SELECT of the candidate columns reads (see `open`)
        try:
            self._db = sqlite3.connect(run_dir / DB_NAME, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise _unreadable(run_dir, exc) from None

    @classmethod
    def create(cls, run_dir: Path, spec_yaml: str, meta: dict[str, Any]) -> RunStore:
        """Make a new run folder; refuse to overwrite a run that already has a database."""
        run_dir = Path(run_dir)
        cls.refuse_existing(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        store = cls(run_dir, lock=True)
        store._db.executescript(_SCHEMA)  # executescript commits on its own
        with store._transaction() as db:
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            for key, value in meta.items():
                db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        (run_dir / SPEC_NAME).write_text(spec_yaml)
        return store

    @staticmethod
    def refuse_existing(run_dir: Path) -> None:
        """RunStoreError, saying what to do, when `run_dir` already holds a run."""
        if (Path(run_dir) / DB_NAME).exists():
            raise RunStoreError(
                f"run folder '{run_dir}' already holds a run; resume it (`matsearch resume {run_dir}`), "
                "choose another name, or replace it (`matsearch run --overwrite`, "
                "`Search(spec).run(overwrite=True)`)"
            )

    @classmethod
    def remove(cls, run_dir: Path) -> None:
        """Delete the run in `run_dir` (the whole folder); refused while another process drives it.
        A folder that holds no run is left alone."""
        run_dir = Path(run_dir)
        if not (run_dir / DB_NAME).exists():
            return
        store = cls(run_dir, lock=True)  # RunStoreError when another process holds the run
        try:
            shutil.rmtree(run_dir)
        finally:
            store.close()
        logger.info("removed the previous run in %s", run_dir)

    @classmethod
    def open(cls, run_dir: Path, *, lock: bool = True) -> RunStore:
        """Open an existing run; `lock=False` for read-only use while another process runs it."""
        run_dir = Path(run_dir)
        if not (run_dir / DB_NAME).is_file():
            raise RunStoreError(f"'{run_dir}' is not a matsearch run folder (no {DB_NAME} in it)")
        store = cls(run_dir, lock=lock)
        try:
            version = store.meta().get("schema_version")
            if version in _MIGRATIONS and lock:
                store._migrate(version)
                version = SCHEMA_VERSION
            if version == SCHEMA_VERSION and lock:
                store._db.execute(_LLM_CALLS_TABLE)  # runs made before the table existed
                store._db.execute(_DFT_TABLE)
            if version in _ADDED_COLUMNS:  # read an older run as it is: absent columns read as NULL
                for column in _ADDED_COLUMNS[version]:
                    store._select = store._select.replace(column, f"NULL AS {column}")
            store._db.execute("SELECT id FROM candidates LIMIT 1").fetchone()
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: meta that is not JSON
            store.close()
            raise _unreadable(run_dir, exc) from None
        if version != SCHEMA_VERSION and version not in _MIGRATIONS:
            store.close()
            raise RunStoreError(
                f"run '{run_dir}' has store schema {version}; this matsearch reads schema {SCHEMA_VERSION} "
                f"and upgrades schema {', '.join(map(str, _MIGRATIONS))}"
            )
        return store

    def _migrate(self, version: int) -> None:
        """Bring a run of an older schema to SCHEMA_VERSION in one transaction."""
        with self._transaction() as db:
            while version != SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- meta -------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def spec_yaml(self) -> str:
        """The run's resolved spec; RunStoreError when spec.yaml is missing or unreadable."""
        path = self.run_dir / SPEC_NAME
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
            raise RunStoreError(
                f"'{path}' {reason}; restore the run's spec.yaml (it holds the resolved spec)"
            ) from None

    # --- candidates -------------------------------------------------------------------------

    def add(
        self, candidates: Iterable[Candidate], *, proposed_generation: int | None = None
    ) -> list[Candidate]:
        """Insert new candidates in one transaction; assigns and returns their ids.

        With `proposed_generation`, the same transaction marks that generation's proposals as
        complete, so a resumed run never proposes a generation twice.
        """
        now = time.time()
        candidates = list(candidates)
        with self._transaction() as db:
            if proposed_generation is not None:
                db.execute(
                    "INSERT INTO generations (generation, proposed_at) VALUES (?, ?)",
                    (proposed_generation, now),
                )
            for candidate in candidates:
                row = _to_row(candidate, _extra_json(db, candidate.extra))
                cursor = db.execute(
                    f"INSERT INTO candidates ({_COLUMNS}, created_at, updated_at) "
                    f"VALUES ({', '.join('?' * (len(row) + 2))})",
                    (*row, now, now),
                )
                candidate.id = cursor.lastrowid
        return candidates

    def update(self, candidates: Iterable[Candidate]) -> None:
        """Write the current state of existing candidates in one transaction (all but the proposed
        structure, which `add` wrote and which never changes)."""
        now = time.time()
        names = [c.strip() for c in _COLUMNS.split(",")]
        changing = [i for i, name in enumerate(names) if name not in ("id", "structure")]
        assignments = ", ".join(f"{names[i]} = ?" for i in changing)
        with self._transaction() as db:
            for candidate in candidates:
                if candidate.id is None:
                    raise ValueError("update() needs stored candidates; use add() for new ones")
                row = _to_row(candidate, _extra_json(db, candidate.extra), proposed=False)
                db.execute(
                    f"UPDATE candidates SET {assignments}, updated_at = ? WHERE id = ?",
                    (*(row[i] for i in changing), now, candidate.id),
                )

    def candidates(
        self, *, generation: int | None = None, status: Status | Iterable[Status] | None = None
    ) -> list[Candidate]:
        """Stored candidates in id order, optionally filtered by generation and status."""
        clauses, params = [], []
        if generation is not None:
            clauses.append("generation = ?")
            params.append(generation)
        if status is not None:
            statuses = [status] if isinstance(status, Status) else list(status)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(s.value for s in statuses)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f"SELECT {self._select} FROM candidates {where} ORDER BY id", params)
        return [_from_row(row) for row in rows]

    def count(self, *, operator: str) -> int:
        """How many stored candidates an operator proposed."""
        return self._db.execute("SELECT COUNT(*) FROM candidates WHERE operator = ?", (operator,)).fetchone()[
            0
        ]

    def get(self, ids: Iterable[int]) -> list[Candidate]:
        """Candidates by id, in the order asked."""
        ids = list(ids)
        if not ids:
            return []
        rows = self._db.execute(
            f"SELECT {self._select} FROM candidates WHERE id IN ({', '.join('?' * len(ids))})", ids
        ).fetchall()
        by_id = {row[0]: _from_row(row) for row in rows}
        return [by_id[i] for i in ids]

    def llm_call(self, call_id: int) -> dict[str, Any]:
        """The LLM call a candidate came from (its extra["llm_call_id"]): prompt messages, response
        (at most MAX_LLM_TEXT_CHARS characters), response_chars (its full length) and truncated."""
        row = self._db.execute(
            "SELECT prompt, response, response_chars, truncated FROM llm_calls WHERE id = ?",
            (call_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no LLM call {call_id} in run '{self.run_dir}'")
        prompt, response, chars, truncated = row
        return {
            "prompt": json.loads(prompt),
            "response": response,
            "response_chars": chars,
            "truncated": bool(truncated),
        }

    # --- DFT results ------------------------------------------------------------------------

    def _has_dft_table(self) -> bool:
        row = self._db.execute("SELECT name FROM sqlite_master WHERE name = 'dft_results'").fetchone()
        return row is not None

    def dft_digests(self) -> set[str]:
        """Digests of the DFT files already ingested."""
        if not self._has_dft_table():
            return set()
        return {row[0] for row in self._db.execute("SELECT digest FROM dft_results")}

    def add_dft_results(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert ingested DFT results (dicts keyed by DFT_COLUMNS, values as Python objects) in one
        transaction; returns how many."""
        rows = list(rows)
        placeholders = ", ".join("?" * (len(DFT_COLUMNS) + 1))
        with self._transaction() as db:
            for row in rows:
                values = [json.dumps(row[k]) if k in _JSON_DFT_COLUMNS else row[k] for k in DFT_COLUMNS]
                columns = ", ".join(DFT_COLUMNS)
                db.execute(
                    f"INSERT INTO dft_results ({columns}, ingested_at) VALUES ({placeholders})",
                    (*values, time.time()),
                )
        return len(rows)

    def dft_results(self, *, frames: bool = False) -> list[dict[str, Any]]:
        """Ingested DFT results in ingestion order (dicts keyed by DFT_COLUMNS plus id and
        ingested_at; `frames` only when asked, it is the bulk of the row)."""
        if not self._has_dft_table():
            return []
        columns = ["id", *(c for c in DFT_COLUMNS if frames or c != "frames"), "ingested_at"]
        cursor = self._db.execute(f"SELECT {', '.join(columns)} FROM dft_results ORDER BY id")
        results = []
        for values in cursor:
            row = dict(zip(columns, values, strict=True))
            for key in _JSON_DFT_COLUMNS:
                if key in row and row[key] is not None:
                    row[key] = json.loads(row[key])
            row["converged"], row["comparable"] = bool(row["converged"]), bool(row["comparable"])
            results.append(row)
        return results

    # --- generations and populations -------------------------------------------------------

    def is_proposed(self, generation: int) -> bool:
        row = self._db.execute(
            "SELECT proposed_at FROM generations WHERE generation = ?", (generation,)
        ).fetchone()
        return row is not None and row[0] is not None

    def complete_generation(self, generation: int, population: list[int], metrics: dict) -> None:
        """Store the survivors (best first) and metrics; the generation is then done."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO population VALUES (?, ?, ?)",
                [(generation, cid, rank) for rank, cid in enumerate(population)],
            )
            db.execute(
                "UPDATE generations SET completed_at = ?, metrics = ? WHERE generation = ?",
                (time.time(), json.dumps(metrics), generation),
            )

    def population(self, generation: int) -> list[int]:
        rows = self._db.execute(
            "SELECT candidate_id FROM population WHERE generation = ? ORDER BY rank", (generation,)
        )
        return [row[0] for row in rows]

    def is_completed(self, generation: int) -> bool:
        row = self._db.execute(
            "SELECT completed_at FROM generations WHERE generation = ?", (generation,)
        ).fetchone()
        return row is not None and row[0] is not None

    def last_completed_generation(self) -> int | None:
        row = self._db.execute(
            "SELECT MAX(generation) FROM generations WHERE completed_at IS NOT NULL"
        ).fetchone()
        return row[0]

    def generation_metrics(self) -> dict[int, dict[str, Any]]:
        rows = self._db.execute(
            "SELECT generation, metrics FROM generations WHERE completed_at IS NOT NULL ORDER BY generation"
        )
        return {gen: json.loads(metrics) for gen, metrics in rows}

    # --- tables ------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """One row per candidate with lineage, status, energies and every objective score."""
        records = []
        for c in self.candidates():
            record = {
                "id": c.id,
                "generation": c.generation,
                "origin": c.origin,
                "operator": c.operator,
                "parents": c.parents,
                "status": c.status.value,
                "reason": c.reason,
                "formula": c.formula,
                "n_atoms": c.n_atoms,
                "energy_per_atom_ev": c.energy_per_atom,
                "initial_energy_per_atom_ev": c.initial_energy_per_atom,
                "e_above_hull_ev_per_atom": c.e_above_hull,
                "converged": c.converged,
                "relax_steps": c.relax_steps,
                "novelty": None if c.novelty is None else c.novelty.value,
                "known_id": c.known_id,
                "flags": ",".join(c.flags),
                "duplicate_of": c.duplicate_of,
            }
            record.update({f"score_{k}": v for k, v in c.scores.items()})
            record.update({f"time_{k}_s": v for k, v in c.timings.items()})
            records.append(record)
        return pd.DataFrame.from_records(records)


def _unreadable(run_dir: Path, exc: Exception) -> RunStoreError:
    return RunStoreError(
        f"'{run_dir / DB_NAME}' is not a readable matsearch run database ({exc}); "
        "restore it from a copy or start a new run"
    )


def _capped(text: str) -> tuple[str, bool]:
    return (text[:MAX_LLM_TEXT_CHARS], True) if len(text) > MAX_LLM_TEXT_CHARS else (text, False)


def _extra_json(db: sqlite3.Connection, extra: dict[str, Any]) -> str:
    """`extra` as JSON, with an LLM prompt and response moved to the llm_calls table (once per
    distinct call, capped) and replaced by their row id."""
    if not any(key in extra for key in _LLM_TEXT_KEYS):
        return json.dumps(extra)
    prompt = extra.get("prompt") or []
    response = str(extra.get("response") or "")
    digest = hashlib.sha256(json.dumps([prompt, response]).encode()).hexdigest()
    row = db.execute("SELECT id FROM llm_calls WHERE digest = ?", (digest,)).fetchone()
    if row is None:
        kept, truncated = _capped(response)
        messages = []
        for message in prompt:
            content, cut = _capped(str(message.get("content", "")))
            messages.append(message | {"content": content})
            truncated = truncated or cut
        row = db.execute(
            "INSERT INTO llm_calls (digest, prompt, response, response_chars, truncated) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (digest, json.dumps(messages), kept, len(response), int(truncated)),
        ).fetchone()
    rest = {key: value for key, value in extra.items() if key not in _LLM_TEXT_KEYS}
    return json.dumps(rest | {"llm_call_id": row[0]})


def _to_row(c: Candidate, extra_json: str, *, proposed: bool = True) -> tuple:
    """The candidate's column values in `_COLUMNS` order; without `proposed`, the proposed
    structure's column is left None (not serialised)."""
    return (
        c.id,
        c.generation,
        c.origin,
        c.operator,
        json.dumps(c.parents),
        c.status.value,
        c.reason,
        c.formula,
        c.n_atoms,
        None if c.structure is None or not proposed else structure_to_json(c.structure),
        None if c.relaxed is None else structure_to_json(c.relaxed),
        c.energy_per_atom,
        c.initial_energy_per_atom,
        c.e_above_hull,
        None if c.converged is None else int(c.converged),
        c.relax_steps,
        None if c.novelty is None else c.novelty.value,
        c.known_id,
        json.dumps([f.value for f in c.flags]),
        c.duplicate_of,
        json.dumps(c.scores),
        json.dumps(c.timings),
        extra_json,
        None if c.forces is None else json.dumps(c.forces),
        None if c.stress_gpa is None else json.dumps(c.stress_gpa),
    )


def _from_row(row: tuple) -> Candidate:
    (cid, gen, origin, operator, parents, status, reason, _formula, _n, structure, relaxed,
     energy, initial, ehull, converged, steps, novelty, known_id, flags, duplicate_of, scores, timings,
     extra, forces, stress) = row  # fmt: skip
    return Candidate(
        id=cid,
        generation=gen,
        origin=origin,
        operator=operator,
        parents=json.loads(parents),
        structure=None if structure is None else structure_from_json(structure),
        status=Status(status),
        reason=reason,
        relaxed=None if relaxed is None else structure_from_json(relaxed),
        energy_per_atom=energy,
        initial_energy_per_atom=initial,
        e_above_hull=ehull,
        converged=None if converged is None else bool(converged),
        relax_steps=steps,
        novelty=None if novelty is None else Novelty(novelty),
        known_id=known_id,
        flags=[Flag(f) for f in json.loads(flags)],
        duplicate_of=duplicate_of,
        scores=json.loads(scores),
        timings=json.loads(timings),
        extra=json.loads(extra),
        forces=None if forces is None else json.loads(forces),
        stress_gpa=None if stress is None else json.loads(stress),
    )
