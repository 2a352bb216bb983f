"""Request size and rate limits.

:class:`BodyLimitMiddleware` (pure ASGI) refuses a body over ``max_body_bytes`` with 413 before the route runs —
by ``Content-Length`` when given, else by counting while buffering — so an oversized request never reaches
:class:`remem.Memory` and can write nothing. :class:`RateLimiter` is a token bucket per API key (``rate`` requests
per second, bursts up to ``burst``); ``rate <= 0`` turns it off. Limits are per process (one process per data
directory anyway).
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .http_errors import PayloadTooLargeError, RateLimitedError, remem_error_response


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self, size: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body of {size} bytes is larger than the limit of {self.max_body_bytes} bytes"
            " (remem serve --max-body-bytes / REMEM_MAX_BODY_BYTES)",
            limit=self.max_body_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body_bytes
            except ValueError:
                too_big = False
            if too_big:
                await remem_error_response(self._too_large(declared.decode()))(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await remem_error_response(self._too_large(f"more than {self.max_body_bytes}"))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RateLimiter:
    """Token bucket per key id. Thread-safe (sync routes run in a thread pool)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / self.rate + 0.999))
                raise RateLimitedError(
                    f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded; retry in {wait}s",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
