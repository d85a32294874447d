"""A local OpenAI-compatible chat server for tests: answers arithmetic in ChatAdapter format.

It records the Authorization headers it saw, so tests can check where credentials came from. For a
model whose name contains `echo-key` it answers 401 quoting the key it was sent, as real providers do
("Incorrect API key provided: ..."), so tests can check that a worker never writes that key anywhere.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from btq.worker.lm.simulated import _solve_arith


class StubOpenAI:
    """Serves POST /v1/chat/completions on a free loopback port in a background thread."""

    def __init__(self) -> None:
        self.auth_headers: list[str] = []
        self.models: list[str] = []
        self.echoed = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.auth_headers.append(self.headers.get("Authorization", ""))
                stub.models.append(body.get("model", ""))
                if "echo-key" in body.get("model", ""):
                    stub.echoed += 1
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    message = (
                        f"Incorrect API key provided: {key}. You can find your API key at https://example.invalid."
                    )
                    error = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
                    self._send(401, error)
                    return
                last = body["messages"][-1]["content"]
                text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
                answer = _solve_arith({"q": text})
                reply = {
                    "id": "stub",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]",
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                self._send(200, reply)

            def _send(self, status: int, reply: dict[str, Any]) -> None:
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
