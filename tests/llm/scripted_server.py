"""A scripted OpenAI-compatible chat server on 127.0.0.1 for exact answers and failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pymatgen.core import Structure

from matsearch.proposers.llm.codecs import to_json, to_poscar

from .crystals import rocksalt

GOOD_ANSWER = json.dumps(
    {
        "structures": [
            {"formula": "NaCl", "poscar": to_poscar(rocksalt())},
            {"formula": "KCl", "poscar": to_poscar(rocksalt(6.29, "K"))},
        ]
    }
)


SCHEMA_REFUSAL = "response_format of type json_schema is not supported by this server"


def schema_answer(*structures: Structure) -> str:
    """An answer in the JSON-schema format: {"structures": [{formula, lattice, species, coords}]}."""
    return json.dumps(
        {"structures": [{"formula": s.composition.reduced_formula} | to_json(s) for s in structures]}
    )


@dataclass
class Action:
    """What the server does with one request."""

    kind: str = "ok"  # ok | status | drop | raw (`text` sent as the whole body)
    text: str = GOOD_ANSWER
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] = (1000, 500)


class ScriptedServer:
    """/v1/chat/completions playing `script` in order, then `default` for every further request.
    With `refuses_schema`, a request carrying `response_format` gets HTTP 400 (SCHEMA_REFUSAL),
    as servers without structured output answer; it does not use up a scripted action."""

    def __init__(self, *, refuses_schema: bool = False) -> None:
        self.refuses_schema = refuses_schema
        self.script: deque[Action] = deque()
        self.default = Action()
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    outer.auth_headers.append(self.headers.get("Authorization", ""))
                    if outer.refuses_schema and "response_format" in body:
                        action = Action(kind="status", status=400, text=SCHEMA_REFUSAL)
                    else:
                        action = outer.script.popleft() if outer.script else outer.default
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(action.delay_s)
                    if action.kind == "drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.connection.close()
                        return
                    if action.kind == "raw":
                        payload = None
                    elif action.kind == "status":
                        message = (
                            SCHEMA_REFUSAL if action.text == SCHEMA_REFUSAL else f"scripted {action.status}"
                        )
                        payload = {"error": {"message": message, "type": "invalid_request_error"}}
                    else:
                        p, c = action.usage
                        payload = {
                            "id": f"chatcmpl-{len(outer.requests)}",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": action.text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": p,
                                "completion_tokens": c,
                                "total_tokens": p + c,
                            },
                        }
                    data = action.text.encode() if payload is None else json.dumps(payload).encode()
                    self.send_response(action.status)
                    for key, value in action.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout) before the answer
                    pass
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
