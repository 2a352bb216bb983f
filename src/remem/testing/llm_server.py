"""A loopback HTTP server that speaks the OpenAI chat-completions wire format, for transport-level tests.

DSPy 3.4 reaches OpenAI, OpenAI-compatible servers (vLLM, llama.cpp server, LM Studio) and Ollama through its
own HTTP client (a socket transport, not httpx), or through LiteLLM for other settings: a real server on
127.0.0.1 sees the exact request whichever path DSPy takes, with no network. It records each request (path,
headers, JSON body) and answers from a list of replies (a status and a JSON body, or a callable of the request).

>>> with FakeLLMServer([chat_reply('{"facts": []}')]) as server:      # doctest: +SKIP
...     lm = dspy.LM("openai/qwen2.5-7b", api_base=server.url + "/v1", api_key="x")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Reply = tuple[int, dict[str, Any]]
ReplyFn = Callable[[RecordedRequest], Reply]


def chat_reply(content: str, *, prompt_tokens: int = 100, completion_tokens: int = 20) -> Reply:
    """A 200 OpenAI chat completion whose message is ``content``."""
    return 200, {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error_reply(status: int, message: str, param: str | None = None) -> Reply:
    """An OpenAI-style error body (``invalid_request_error``)."""
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


@dataclass
class FakeLLMServer:
    """Serve ``replies`` in order (a callable reply answers every request from then on)."""

    replies: Sequence[Reply | ReplyFn]
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._replies = list(self.replies)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                request = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()},
                                          json.loads(raw or b"{}"))
                status, body = outer._answer(request)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self._replies:
                return error_reply(500, "the fake server has no reply left")
            reply = self._replies[0]
            if callable(reply):
                return reply(request)
            self._replies.pop(0)
            return reply

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
