"""A local OpenAI-compatible chat server for tests: answers arithmetic in ChatAdapter format.

It counts the requests it answered and the tokens it reported (one token per four characters, so totals
are checkable), and can enforce a requests-per-minute limit, answering 429 with `Retry-After` above it
(`rpm_limit`, checked over a sliding `rpm_window_s`, as providers do over short windows).
It records the Authorization headers it saw, so tests can check where credentials came from. For a
model whose name contains `echo-key` it answers 401 quoting the key it was sent, as real providers do
("Incorrect API key provided: ..."), so tests can check that a worker never writes that key anywhere.
"""

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from btq.worker.lm.simulated import _solve_arith


class StubOpenAI:
    """Serves POST /v1/chat/completions on a free loopback port in a background thread."""

    def __init__(self) -> None:
        self.auth_headers: list[str] = []
        self.models: list[str] = []
        self.echoed = 0
        self.answered = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.rejected_429 = 0
        self.rpm_limit: int | None = None
        self.rpm_window_s = 2.0
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
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
                retry_after = stub._over_limit()
                if retry_after is not None:
                    error = {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "429"}}
                    self._send(429, error, {"Retry-After": f"{retry_after:.3f}"})
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
                }
                content = reply["choices"][0]["message"]["content"]
                prompt = sum(_tokens(_text(m.get("content"))) for m in body["messages"])
                completion = _tokens(content)
                reply["usage"] = {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                }
                with stub._lock:
                    stub.answered += 1
                    stub.prompt_tokens += prompt
                    stub.completion_tokens += completion
                self._send(200, reply)

            def _send(self, status: int, reply: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
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

    def _over_limit(self) -> float | None:
        """Admit one request, or return the seconds until the sliding window has room (a 429)."""
        if self.rpm_limit is None:
            return None
        allowed = max(1, int(self.rpm_limit * self.rpm_window_s / 60))
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0] <= now - self.rpm_window_s:
                self._recent.popleft()
            if len(self._recent) >= allowed:
                self.rejected_429 += 1
                return self._recent[0] + self.rpm_window_s - now
            self._recent.append(now)
        return None

    def counts(self) -> tuple[int, int, int, int]:
        """(answered requests, prompt tokens, completion tokens, 429s) so far."""
        with self._lock:
            return self.answered, self.prompt_tokens, self.completion_tokens, self.rejected_429

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def _tokens(text: str) -> int:
    """Tokens the stub reports for some text: one per four characters, rounded up."""
    return -(-len(text) // 4)
