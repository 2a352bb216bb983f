"""The error edge: every failure leaves the server as JSON ``{"error": code, "message": ...}``.

:class:`~remem.errors.RememError` subclasses map to HTTP statuses by class (see :data:`STATUS`); FastAPI's own
request validation becomes 422 (400 for a body that is not JSON at all) without echoing the input; an
unexpected exception is a 500 whose body names no internals (the traceback goes to the server log).

Two guarantees keep a client's keep-alive connection usable whatever it sends: every error body is rendered by
:class:`SafeJSONResponse` (which cannot fail to encode: a lone surrogate becomes a ``\\u`` escape), and
:class:`UnexpectedErrorMiddleware` answers an unexpected exception with that 500 itself instead of re-raising
it to the server (uvicorn closes the connection of a request whose application raised).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    AuthError,
    ConfigurationError,
    EmbeddingError,
    ForbiddenError,
    LLMError,
    MarkdownConflictError,
    NotFoundError,
    RememError,
    StoreError,
    StoreLockedError,
    ValidationError,
)

log = logging.getLogger("remem.server")


class RateLimitedError(RememError):
    """Too many requests for this key; ``retry_after`` seconds until the next one is allowed."""

    code = "rate_limited"


class PayloadTooLargeError(ValidationError):
    code = "payload_too_large"


class NoLanguageModelError(ConfigurationError):
    """The route needs an LM and the server was started without one."""

    code = "no_lm_configured"


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


#: Most specific class first.
STATUS: list[tuple[type[RememError], int]] = [
    (PayloadTooLargeError, 413),
    (ValidationError, 422),
    (NotFoundError, 404),
    (AuthError, 401),
    (ForbiddenError, 403),
    (RateLimitedError, 429),
    (MarkdownConflictError, 409),  # a hand-edited Markdown file remem cannot read yet: fix it, retry
    (StoreLockedError, 503),
    (StoreError, 503),
    (ConfigurationError, 503),
    (EmbeddingError, 502),
    (LLMError, 502),
]

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 422: "invalid_input", 429: "rate_limited"}


def status_for(exc: RememError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: text UTF-8 cannot hold (a lone surrogate) is written as ``\\u`` escapes."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, default=str,
                              separators=(",", ":")).encode("ascii")


def error_response(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, details=details).model_dump(exclude_none=True)
    return SafeJSONResponse(body, status_code=status, headers=headers)


def remem_error_response(exc: RememError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.context.get("retry_after", 1))
    # LLM errors carry raw model output (user data): never in a response body.
    message = exc.message if not isinstance(exc, LLMError) else f"{type(exc).__name__}: the LM call failed"
    return error_response(status, exc.code, message, headers=headers or None)


async def _on_remem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RememError)
    return remem_error_response(exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    # Keep where and what; drop the offending input (it may be memory text).
    details = [{"loc": [str(p) for p in e.get("loc", ())], "type": str(e.get("type", "")),
                "msg": str(e.get("msg", "")).removeprefix("Value error, ")} for e in errors]
    # In a union (a string or a list of messages), the branches that do not fit report a type mismatch: name
    # the real problem, and leave pydantic's union tags (``list[...]``, ``function-after[...]``) out of the path.
    wrong_branch = {"string_type", "list_type", "model_type", "dict_type", "model_attributes_type"}
    chosen = next((d for d in details if d["type"] not in wrong_branch), details[0] if details else None)
    first = ({"loc": [p for p in chosen["loc"] if "[" not in p], "msg": chosen["msg"]} if chosen
             else {"loc": [], "msg": "invalid request"})
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "invalid_input", f"{where}: {first['msg']}" if where else str(first["msg"]),
                          details)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    """Log an unexpected exception without user data: the route template (``/v1/users/{user_id}/…``, not the
    raw path) and the exception type at ERROR; the message and traceback (which may quote request input, e.g.
    memory text) only at DEBUG (``remem serve --log-level debug``)."""
    route = scope.get("route")
    where = getattr(route, "path", None) or "(no route)"
    log.error("unexpected %s on %s %s (traceback at debug level)", type(exc).__name__, scope.get("method"), where)
    log.debug("unexpected error", exc_info=exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log_unexpected(request.scope, exc)
    return error_response(500, "internal_error", "internal server error (see the server log)")


class UnexpectedErrorMiddleware:
    """Answer an unexpected exception with the JSON 500 (logged with its traceback) and keep the connection.

    Starlette's outermost error middleware re-raises after answering, and uvicorn then closes the connection,
    so the client's next request on it fails. This middleware sits inside it and does not re-raise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:  # the response is already on its way: nothing left to answer with
                raise
            log_unexpected(scope, exc)
            await error_response(500, "internal_error", "internal server error (see the server log)")(
                scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RememError, _on_remem_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
