"""The error edge: every failure leaves the server as JSON ``{"error": code, "message": ...}``.

:class:`~remem.errors.RememError` subclasses map to HTTP statuses by class (see :data:`STATUS`); FastAPI's own
request validation becomes 422 (400 for a body that is not JSON at all) without echoing the input; an
unexpected exception is a 500 whose body names no internals (the traceback goes to the server log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def error_response(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


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
    details = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
               for e in errors]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "invalid_input", f"{where}: {first['msg']}" if where else str(first["msg"]),
                          details)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error (see the server log)")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RememError, _on_remem_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
