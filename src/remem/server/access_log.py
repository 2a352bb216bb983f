"""One structured (JSON) log line per request: method, route template, status, latency, tenant, key id, and the
serving process (``pid``: with ``remem serve --workers N``, which worker answered).

Route templates (``/v1/users/{user_id}/memories``) are logged, not raw paths, and never bodies or query strings:
memory text is user data. With ``debug`` the raw path and query string are added.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("remem.server.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, *, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/mcp" if scope["path"].startswith("/mcp") else "unmatched")
            state: dict[str, Any] = scope.get("state") or {}
            line: dict[str, Any] = {
                "event": "request", "method": scope["method"], "route": template, "status": status,
                "ms": round((time.perf_counter() - start) * 1000, 2),
                "tenant": state.get("tenant"), "key_id": state.get("key_id"), "pid": os.getpid(),
            }
            if self.debug:
                line["path"] = scope["path"]
                line["query"] = scope.get("query_string", b"").decode("latin-1")
            log.info(json.dumps(line))
