"""The FastAPI application factory: routes, auth, limits, access log, error edge, the web page at ``/ui``,
and (optionally) the MCP endpoint at ``/mcp`` — all in the one process that owns the data directory."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.routing import Route

from .. import __version__
from ..errors import ConfigurationError
from ..memory import Memory
from ..stores import MemoryFilter
from . import admin, graph_routes, http_errors, routes
from .access_log import AccessLogMiddleware
from .auth import KeyStore
from .limits import BodyLimitMiddleware, RateLimiter
from .schemas import Health, Ready

log = logging.getLogger("remem.server")


ENV = {"max_body_bytes": "REMEM_MAX_BODY_BYTES", "rate_limit": "REMEM_RATE_LIMIT", "rate_burst": "REMEM_RATE_BURST"}


class ServerConfig(BaseModel):
    """Server limits and switches. Defaults come from ``REMEM_MAX_BODY_BYTES`` (1 byte to 1 GiB),
    ``REMEM_RATE_LIMIT`` (requests per second per key, 0 = off, at most 1,000,000) and ``REMEM_RATE_BURST``
    (0 to 1,000,000). The LM is the memory's own (``Memory(lm=...)``, ``REMEM_LM``): with one, ``infer=true``
    and ``/chat`` work; without, they answer 503. A value out of range is a ConfigurationError naming it."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=8_388_608, ge=1, le=2**30)  # 8 MiB: a 1M-character text fits as JSON
    rate_limit: float = Field(default=50.0, ge=0, le=1e6, allow_inf_nan=False)
    rate_burst: int = Field(default=100, ge=0, le=1_000_000)
    debug: bool = False
    mcp: bool = True
    mcp_user: str | None = Field(default=None, max_length=128)  # None: /mcp needs X-Remem-User (server/mcp.py)
    host: str = Field(default="127.0.0.1", min_length=1, max_length=255)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerConfig:
        values: dict[str, Any] = {k: os.environ[v] for k, v in ENV.items() if os.environ.get(v, "") != ""}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{ENV.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '?'}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"invalid server configuration: {problems}") from None


def _make_agent(memory: Memory) -> Any:
    """The chat agent of :mod:`remem.pipeline` when the memory has an LM (``Memory(lm=...)``/``REMEM_LM``)."""
    if memory.pipeline is None:
        return None
    from ..pipeline import Agent

    return Agent(memory)


def create_app(memory: Memory, keys: KeyStore, config: ServerConfig | None = None, *, owned: bool = False) -> FastAPI:
    """The ASGI app serving ``memory``. The caller owns ``memory`` and ``keys`` and closes them, unless
    ``owned`` (the app closes them when it shuts down: the multi-worker factory, :mod:`.factory`)."""
    config = config or ServerConfig()
    mcp_app = None
    if config.mcp:
        from .mcp import build_mcp_http_app

        mcp_app, mcp_lifespan = build_mcp_http_app(memory, keys, default_user=config.mcp_user, host=config.host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if owned:
                stack.callback(keys.close)
                stack.callback(memory.close)
            if mcp_app is not None:
                await stack.enter_async_context(mcp_lifespan())
            yield

    app = FastAPI(
        title="remem",
        version=__version__,
        summary="Persistent per-user memory for LLM agents: REST API.",
        description="Every /v1 route except health and readiness needs an API key (Authorization: Bearer <key> "
        "or X-API-Key). A key belongs to one tenant; user ids in paths are names within that tenant.",
        lifespan=lifespan,
    )
    app.state.memory = memory
    app.state.keys = keys
    app.state.limiter = RateLimiter(config.rate_limit, config.rate_burst)
    app.state.config = config
    app.state.agent = _make_agent(memory)
    http_errors.install(app)
    app.include_router(routes.router)
    app.include_router(graph_routes.router)
    app.include_router(admin.router)

    @app.get("/v1/health", response_model=Health, tags=["ops"])
    def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", version=__version__)

    @app.get("/v1/ready", response_model=Ready, tags=["ops"], responses={503: {"model": http_errors.ErrorBody}})
    def ready() -> Ready:
        """Readiness: the store and the history database answer a query (no data is returned)."""
        memory.store.count(MemoryFilter(user_id="remem-readiness-probe"))
        memory.log.count()
        return Ready(status="ready", store=memory.store.name, embedder=memory.embedder.name,
                     lm=app.state.agent is not None or memory.pipeline is not None)

    static = resources.files("remem.server").joinpath("static")
    app.mount("/ui", StaticFiles(directory=str(static), html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    if mcp_app is not None:
        app.router.routes.append(Route("/mcp", endpoint=mcp_app, methods=["GET", "POST", "DELETE"],
                                       include_in_schema=False))
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    app.add_middleware(http_errors.UnexpectedErrorMiddleware)  # inside the access log, outside everything else
    app.add_middleware(AccessLogMiddleware, debug=config.debug)
    return app
