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

from matsearch.proposers.llm.codecs import to_poscar

from .crystals import rocksalt

GOOD_ANSWER = json.dumps(
    {
        "structures": [
            {"formula": "NaCl", "poscar": to_poscar(rocksalt())},
            {"formula": "KCl", "poscar": to_poscar(rocksalt(6.29, "K"))},
        ]
    }
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
    """/v1/chat/completions playing `script` in order, then `default` for every further request."""

    def __init__(self) -> None:
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
                        payload = {"error": {"message": f"scripted {action.status}", "type": "scripted"}}
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
