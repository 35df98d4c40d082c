"""SQLite cache of LLM answers by prompt hash: a resumed run does not pay for a prompt twice.

The file holds the model name, the messages, sampling parameters and the answer; never credentials.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from matsearch.proposers.llm.backends.base import ChatRequest, Completion, OutputMode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    prompt_hash TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    messages_json TEXT NOT NULL,
    sampling_json TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL,
    finish_reason TEXT,
    created_unix_s REAL NOT NULL,
    output_mode TEXT NOT NULL DEFAULT 'free_text'
)
"""


class CompletionCache:
    """Answers by prompt hash in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
        if "output_mode" not in columns:  # a cache written before output modes were recorded
            self._db.execute(
                "ALTER TABLE completions ADD COLUMN output_mode TEXT NOT NULL DEFAULT 'free_text'"
            )
        self._db.commit()

    def __repr__(self) -> str:
        return f"CompletionCache({str(self.path)!r})"

    def get(self, key: str) -> Completion | None:
        """The stored answer for `key` as a cache hit (cost 0.0, cached=True), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason, output_mode "
                "FROM completions WHERE prompt_hash = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, finish_reason, output_mode = row
        return Completion(
            text=text,
            prompt_hash=key,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=0.0,
            cached=True,
            finish_reason=finish_reason,
            output_mode=OutputMode(output_mode),
        )

    def put(self, model: str, request: ChatRequest, completion: Completion) -> None:
        """Store a fresh answer (answers that carry an error are not stored)."""
        if completion.error is not None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    completion.prompt_hash,
                    model,
                    json.dumps(request.messages, ensure_ascii=False),
                    json.dumps(request.sampling(), sort_keys=True),
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.cost_usd,
                    completion.finish_reason,
                    time.time(),
                    str(completion.output_mode),
                ),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
