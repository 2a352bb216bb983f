"""The MCP server (official ``mcp`` SDK, :class:`~mcp.server.mcpserver.MCPServer`).

Tools: ``add_memory``, ``search_memories``, ``get_context``, ``list_memories``, ``update_memory``,
``delete_memory`` (and ``search_graph`` with graph memory on, ``REMEM_GRAPH=1``); resource
``remem://profile`` (the user's facts, newest first). No tool takes a user id: the user comes from the server's
configuration or from the connection, never from the model's arguments, so a model cannot reach another user's
memories by naming them.

- stdio (``remem mcp --user alice [--tenant acme]``): one fixed user per server process.
- streamable HTTP (``remem mcp --transport http`` or ``/mcp`` on ``remem serve``): every request must carry a
  tenant API key (``Authorization: Bearer`` or ``X-API-Key``) and names its user in the ``X-Remem-User`` header
  (set by the host's configuration, not by the model), inside the key's tenant (``<tenant>:<user>``, see
  :mod:`.tenancy`). A request without the header is refused (HTTP 422 ``invalid_input`` before any MCP session,
  a tool error after) unless the server was started with a default user (``remem serve --mcp-user alice``,
  ``remem mcp --transport http --user alice``): silently filing every header-less client under one shared user
  would mix different people's memories, so sharing a user is something the operator turns on by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Strict
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AuthError, ForbiddenError, RememError, ValidationError
from ..memory import Memory
from ..models import MemoryKind
from ..timeexpr import parse_date, reference_time
from ..validation import check_text, check_user_id
from .auth import KeyStore
from .http_errors import remem_error_response
from .tenancy import internal_user

UserResolver = Callable[[Context | None], str]

INSTRUCTIONS = (
    "Long-term memory of the current user. Search it before answering questions about the user; add durable "
    "facts the user tells you; update or delete memories the user corrects. You cannot choose the user."
)


def _tool_error(exc: RememError) -> ToolError:
    return ToolError(f"{exc.code}: {exc.message}")


def fixed_user(user: str, tenant: str | None = None) -> UserResolver:
    """Resolver for stdio: the one configured user (in ``tenant`` when given)."""
    internal = internal_user(tenant, user) if tenant else check_user_id(user)
    return lambda ctx: internal


def api_key_from(headers: Mapping[str, str]) -> str | None:
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("x-api-key"):
        return lower["x-api-key"]
    auth = lower.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def user_header(headers: Mapping[str, str], default_user: str | None) -> str:
    """The ``X-Remem-User`` header, else ``default_user``; neither: ``ValidationError`` (see the module
    docstring for why there is no implicit shared user)."""
    lower = {k.lower(): v for k, v in headers.items()}
    user = lower.get("x-remem-user") or default_user
    if user is None:
        raise ValidationError("no X-Remem-User header: set it in the MCP client's configuration to the user "
                              "this connection acts for (this server has no default user: --mcp-user)",
                              field="X-Remem-User")
    return user


def header_user(keys: KeyStore, default_user: str | None = None) -> UserResolver:
    """Resolver for HTTP: the tenant of the request's API key, the user of its ``X-Remem-User`` header (else
    ``default_user``, when the operator set one)."""

    def resolve(ctx: Context | None) -> str:
        headers = ctx.headers if ctx is not None else None
        if headers is None:
            raise AuthError("no HTTP headers on this connection: an API key is required")
        who = keys.authenticate(api_key_from(headers))
        if who.role != "tenant" or who.tenant is None:
            raise ForbiddenError("MCP needs a tenant key")
        return internal_user(who.tenant, user_header(headers, default_user))

    return resolve


def _hit_dict(record: Any, score: float | None = None) -> dict[str, Any]:
    out = {"id": record.id, "text": record.text, "categories": record.categories, "kind": record.kind,
           "observed_at": record.observed_at.isoformat() if record.observed_at else None,
           "updated_at": record.updated_at.isoformat()}
    if score is not None:
        out["score"] = round(score, 4)
    return out


def build_mcp_server(memory: Memory, resolve: UserResolver, *, static_profile: bool = False) -> MCPServer:
    server: MCPServer = MCPServer("remem", instructions=INSTRUCTIONS)

    def user(ctx: Context | None) -> str:
        try:
            return resolve(ctx)
        except RememError as exc:
            raise _tool_error(exc) from exc

    @server.tool()
    def add_memory(text: str, ctx: Context, categories: list[str] | None = None, infer: bool = False,
                   background: bool = False) -> dict[str, Any]:
        """Remember a durable fact about the user (one short sentence). Exact duplicates are not stored twice.
        ``infer``: let the server's LM distil and reconcile facts from ``text`` (a user's message); with
        ``background`` the call returns at once and the facts follow."""
        try:
            check_text(text, memory.settings.max_text_chars, "text")  # named as the tool's argument
            result = memory.add(text, user_id=user(ctx), categories=categories, actor="mcp", infer=infer,
                                background=background)
        except RememError as exc:
            raise _tool_error(exc) from exc
        out: dict[str, Any] = {"events": [e.model_dump(mode="json", exclude_none=True) for e in result.events]}
        if infer:
            out.update(job_id=result.job_id, pending=result.pending, usage=result.usage.model_dump())
        return out

    @server.tool()
    def search_memories(query: str, ctx: Context, limit: int = 10, categories: list[str] | None = None,
                        timezone: str | None = None) -> list[dict[str, Any]]:
        """The user's memories most relevant to ``query``, best first. A time in the query ("yesterday", "last
        week") favours memories of that time, counted on the calendar of ``timezone`` (the user's IANA zone,
        e.g. Europe/Berlin; default UTC)."""
        try:
            hits = memory.search(query, user_id=user(ctx), limit=limit, categories=categories,
                                 reference_time=reference_time(None, timezone))
        except RememError as exc:
            raise _tool_error(exc) from exc
        return [_hit_dict(h.record, h.score) for h in hits]

    @server.tool()
    def get_context(query: str, ctx: Context, max_tokens: Annotated[int, Strict()] = 1000,
                    categories: list[str] | None = None,
                    kinds: list[MemoryKind] | None = None) -> dict[str, Any]:
        """What memory holds for ``query``, packed into at most ``max_tokens`` tokens: ``text`` is a Markdown
        block to read (core facts about the user, then dated facts and conversation excerpts), ``items`` its
        blocks with memory and source ids."""
        try:
            found = memory.context(query, user_id=user(ctx), max_tokens=max_tokens, categories=categories,
                                   kinds=kinds)
        except RememError as exc:
            raise _tool_error(exc) from exc
        return {"text": found.text, "tokens": found.tokens, "max_tokens": found.max_tokens,
                "items": [{"kind": i.kind, "observed_at": i.observed_at.isoformat(), "session_id": i.session_id,
                           "memory_ids": i.memory_ids, "source_ids": i.source_ids} for i in found.items]}

    @server.tool()
    def list_memories(ctx: Context, limit: int = 20, offset: int = 0,
                      category: str | None = None) -> dict[str, Any]:
        """A page of the user's memories, newest first (optionally of one category)."""
        try:
            page = memory.list(user_id=user(ctx), limit=limit, offset=offset,
                               categories=[category] if category else None)
        except RememError as exc:
            raise _tool_error(exc) from exc
        return {"items": [_hit_dict(r) for r in page.items], "total": page.total, "next_offset": page.next_offset}

    @server.tool()
    def update_memory(memory_id: str, text: str, ctx: Context) -> dict[str, Any]:
        """Correct a memory's text (same id; the old text stays in its history)."""
        try:
            record = memory.update(memory_id, text, user_id=user(ctx), actor="mcp")
        except RememError as exc:
            raise _tool_error(exc) from exc
        return _hit_dict(record) | {"version": record.version}

    @server.tool()
    def delete_memory(memory_id: str, ctx: Context) -> dict[str, Any]:
        """Delete a memory that is wrong or that the user asked to forget (restorable by a person)."""
        try:
            record = memory.delete(memory_id, user_id=user(ctx), actor="mcp")
        except RememError as exc:
            raise _tool_error(exc) from exc
        return {"id": record.id, "deleted": True}

    if memory.settings.graph:  # graph memory (remem.graph): walk the user's entities and relations
        @server.tool()
        def search_graph(entity_or_text: str, ctx: Context, hops: Annotated[int, Strict()] = 1,
                         as_of: str | None = None, timezone: str | None = None) -> dict[str, Any]:
            """The relations of the people, places, organisations, things and events named in
            ``entity_or_text``, as dated sentences with their source ids. ``hops=2`` also follows the neighbours'
            relations ("Alice's sister" → the sister → where she lives); ``as_of`` (YYYY-MM-DD or an ISO time, on
            the calendar of ``timezone``, default UTC) keeps only what held then. Two entities with the same name
            are told apart by their hint: "Maya (Alice's sister)"."""
            try:
                tz = reference_time(None, timezone).tzinfo
                when = parse_date(as_of, tz or UTC, end_of_day=True) if as_of else None
                if as_of and when is None:
                    raise ValidationError(f"as_of: {as_of!r} is not an ISO date or time", field="as_of")
                found = memory.graph.neighbours(entity_or_text, user_id=user(ctx), hops=hops, as_of=when, tz=tz)
            except RememError as exc:
                raise _tool_error(exc) from exc
            return {"matched": [found.label(e) for e in found.matched],
                    "facts": [{"text": f.text, "source_ids": f.source_ids, "relation_id": f.relation.id,
                               "hops": f.hops} for f in found.facts]}

    def profile(internal: str, limit: int) -> str:
        page = memory.list(user_id=internal, limit=limit, kinds=["fact"])
        lines = [f"- {r.text}" + (f"  [{', '.join(r.categories)}]" if r.categories else "") for r in page.items]
        return "\n".join(lines) if lines else "(no memories yet)"

    @server.resource("remem://profile{?limit}", name="profile", mime_type="text/markdown",
                     description="What remem knows about the current user: their facts, newest first.")
    def profile_template(ctx: Context, limit: int = 50) -> str:
        try:
            return profile(resolve(ctx), limit)
        except RememError as exc:
            raise ResourceError(f"{exc.code}: {exc.message}") from exc

    if static_profile:
        @server.resource("remem://profile", name="profile", mime_type="text/markdown",
                         description="What remem knows about the configured user: their facts, newest first.")
        def profile_static() -> str:
            return profile(resolve(None), 50)

    return server


class _KeyGuard:
    """ASGI guard in front of the MCP endpoint: no valid tenant key, no MCP session (401/403 JSON); no user
    (no ``X-Remem-User`` and no default user), no MCP session either (422 JSON)."""

    def __init__(self, app: ASGIApp, keys: KeyStore, default_user: str | None) -> None:
        self.app = app
        self.keys = keys
        self.default_user = default_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            try:
                who = self.keys.authenticate(api_key_from(headers))
                if who.role != "tenant":
                    raise ForbiddenError("MCP needs a tenant key")
                user_header(headers, self.default_user)
            except RememError as exc:
                await remem_error_response(exc)(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            state["tenant"], state["key_id"] = who.tenant, who.key_id
        await self.app(scope, receive, send)


def build_mcp_http_app(
    memory: Memory, keys: KeyStore, *, default_user: str | None = None, host: str = "127.0.0.1"
) -> tuple[ASGIApp, Callable[[], AbstractAsyncContextManager[None]]]:
    """The guarded streamable-HTTP endpoint (an ASGI app to route at ``/mcp``) and the lifespan it needs.
    ``default_user``: the user of requests without ``X-Remem-User`` (None: such requests are refused)."""
    if default_user is not None:
        check_user_id(default_user)
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

    server = build_mcp_server(memory, header_user(keys, default_user))
    # Builds the session manager (stateless: any request of any process-local session may come on its own).
    server.streamable_http_app(stateless_http=True, json_response=True, host=host)
    manager = server.session_manager
    return _KeyGuard(StreamableHTTPASGIApp(manager), keys, default_user), manager.run


def standalone_http_app(memory: Memory, keys: KeyStore, *, default_user: str | None, host: str) -> Starlette:
    """The app of ``remem mcp --transport http``: the MCP endpoint at ``/mcp`` and nothing else."""
    endpoint, lifespan = build_mcp_http_app(memory, keys, default_user=default_user, host=host)

    @asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        async with lifespan():
            yield

    return Starlette(routes=[Route("/mcp", endpoint=endpoint, methods=["GET", "POST", "DELETE"])], lifespan=run)


__all__ = ["build_mcp_http_app", "build_mcp_server", "fixed_user", "header_user", "standalone_http_app"]
