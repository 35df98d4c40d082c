"""A hard time limit per answer, enforced outside the parser.

The parser is written to run in linear time, but an answer is untrusted input and a run must not
stall on one. `BoundedParser` parses in a worker process; an answer that takes longer than
`time_limit_s` is rejected with reason 'time_limit', the worker is killed and a fresh one is
started for the next answer. Workers are forked from a forkserver that has the parser imported,
so a restart costs milliseconds, not an import of pymatgen.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from matsearch.proposers.llm.parse import (
    ParseResult,
    Rejection,
    RejectReason,
    parse_response,
)

logger = logging.getLogger(__name__)

PARSE_TIME_LIMIT_S = 10.0  # wall-clock seconds one answer may take to parse
WORKER_START_LIMIT_S = 300.0  # seconds a new worker may take to import the parser and answer

Parser = Callable[[str], ParseResult]


def _serve(conn: Connection, parse: Parser) -> None:
    """Worker loop: parse each text received and send the result back; None stops it."""
    conn.send("ready")
    while (text := conn.recv()) is not None:
        conn.send(parse(text))


class BoundedParser:
    """`parse(text)` in a worker process, at most `time_limit_s` seconds per answer.

    `parse` must be a module-level function (it is sent to the worker by reference).
    """

    def __init__(self, time_limit_s: float = PARSE_TIME_LIMIT_S, parse: Parser = parse_response):
        if time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive, not {time_limit_s}")
        self.time_limit_s = time_limit_s
        self._parse = parse
        self._process: Any = None
        self._conn: Connection | None = None

    def __call__(self, text: str) -> ParseResult:
        conn = self._worker()
        try:
            conn.send(text)
            if conn.poll(self.time_limit_s):
                return conn.recv()
        except (EOFError, OSError) as exc:  # the worker died (e.g. out of memory)
            logger.error("parser worker died on an answer of %d characters: %r", len(text), exc)
            self.close()
            detail = "the parser process died on this answer"
            return ParseResult(rejected=[Rejection(RejectReason.INTERNAL_ERROR, "", detail)])
        logger.warning(
            "parsing an answer of %d characters took over %.1f s; worker restarted",
            len(text),
            self.time_limit_s,
        )
        self.close()
        detail = f"parsing took longer than {self.time_limit_s:g} s ({len(text)} characters)"
        return ParseResult(rejected=[Rejection(RejectReason.TIME_LIMIT, "", detail)])

    def _worker(self) -> Connection:
        if self._conn is not None and self._process.is_alive():
            return self._conn
        self.close()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["matsearch.proposers.llm.parse"])
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, self._parse), daemon=True)
        process.start()
        child.close()
        try:
            ready = parent.poll(WORKER_START_LIMIT_S) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            process.kill()
            raise RuntimeError("the parser worker process did not start")
        self._process, self._conn = process, parent
        return parent

    def close(self) -> None:
        """Stop the worker (a later call starts a new one)."""
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._conn.close()
        self._process = self._conn = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the worker may be gone
            self.close()
