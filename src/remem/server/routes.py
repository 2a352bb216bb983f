"""The ``/v1`` memory routes. Each one maps the path's user into the caller's tenant, calls one
:class:`remem.Memory` method and maps the result back; errors are translated by :mod:`.http_errors`.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so a slow embedding or a write waiting
for its user's lock never blocks the event loop, and reads (which take no lock in Memory) go on meanwhile.
"""

from __future__ import annotations

import tempfile
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from ..bounds import MAX_CATEGORIES, MAX_REASON_CHARS
from ..models import AddResult, Context, ForgetResult, MemoryRecord, Page
from ..timeexpr import aware, reference_time
from ..validation import MAX_LIMIT, MAX_OFFSET
from .deps import MemoryDep, ScopeDep, TenantDep
from .http_errors import ErrorBody, NoLanguageModelError
from .schemas import (
    AddBody,
    ChatBody,
    ChatResponse,
    ContextBody,
    HistoryResponse,
    QueryBool,
    ReasonBody,
    SearchBody,
    SearchResponse,
    UpdateBody,
    UsersResponse,
    When,
    Whoami,
)
from .tenancy import out_context, out_event, out_hit, out_page, out_record, tenant_users

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 429, 502, 503)
}

router = APIRouter(prefix="/v1", responses=ERRORS)
USER = "/users/{user_id}"
MEM = USER + "/memories/{memory_id}"
#: A memory id in a path: a UUID, refused before any lookup when it is not one.
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
MemoryId = Annotated[str, PathParam(description="The memory's id (a UUID).", max_length=36, pattern=UUID_PATTERN)]


@router.get("/whoami", response_model=Whoami, tags=["auth"])
def whoami(who: TenantDep) -> Whoami:
    """The tenant of the key used (check a key without touching data)."""
    return Whoami(key_id=who.key_id, role=who.role, tenant=who.tenant)


@router.get("/users", response_model=UsersResponse, tags=["users"])
def list_users(who: TenantDep, memory: MemoryDep) -> UsersResponse:
    """The user ids of your tenant that have memories or history."""
    assert who.tenant is not None
    return UsersResponse(users=tenant_users(who.tenant, memory.users()))


@router.post(USER + "/memories", response_model=AddResult, tags=["memories"])
def add_memories(body: AddBody, scope: ScopeDep, memory: MemoryDep) -> AddResult:
    """Store messages: raw (one memory per message) or ``infer`` (LLM extraction + maintenance; with
    ``background``, queued for a worker: the answer comes once the turns are durable and searchable)."""
    messages: Any = body.messages
    return memory.add(messages, user_id=scope.internal, metadata=body.metadata, categories=body.categories,
                      session_id=body.session_id, infer=body.infer, actor=scope.actor, background=body.background)


@router.get(USER + "/memories", response_model=Page, tags=["memories"])
def list_memories(
    scope: ScopeDep,
    memory: MemoryDep,
    category: Annotated[list[str], Query(description="Repeat to match any of several (at most 32).",
                                         max_length=MAX_CATEGORIES, default_factory=list)],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    since: Annotated[When | None, Query(description="ISO 8601; naive = UTC.")] = None,
    until: Annotated[When | None, Query(description="ISO 8601; naive = UTC.")] = None,
    state: Annotated[Literal["live", "deleted", "all"], Query(description="live, deleted (trash) or all")] = "live",
    order: Literal["asc", "desc"] = "desc",
) -> Page:
    """A page of the user's memories, newest first; pass ``next_offset`` back as ``offset``."""
    deleted = {"live": False, "deleted": True, "all": None}[state]
    page = memory.list(user_id=scope.internal, offset=offset, limit=limit, categories=category or None, since=since,
                       until=until, deleted=deleted, order=order)
    return out_page(scope.tenant, page)


@router.post(USER + "/search", response_model=SearchResponse, tags=["memories"])
def search(body: SearchBody, scope: ScopeDep, memory: MemoryDep) -> SearchResponse:
    """The user's memories most relevant to ``query`` (hybrid dense + BM25 by default)."""
    now = reference_time(body.reference_time, body.timezone)  # ValidationError (422) for an unknown zone
    tz = now.tzinfo or UTC
    hits = memory.search(body.query, user_id=scope.internal, limit=body.limit, categories=body.categories,
                         since=aware(body.since, tz) if body.since else None,
                         until=aware(body.until, tz) if body.until else None, mode=body.mode,
                         threshold=body.threshold, time_expressions=body.time_expressions, reference_time=now,
                         graph=body.graph)
    return SearchResponse(hits=[out_hit(scope.tenant, h) for h in hits])


@router.post(USER + "/context", response_model=Context, tags=["memories"])
def context(body: ContextBody, scope: ScopeDep, memory: MemoryDep) -> Context:
    """The user's best memory for ``query`` packed into ``max_tokens`` (cl100k) tokens: ``text`` is a
    prompt-ready Markdown block (core facts, then dated facts and excerpts), ``items`` its structure."""
    ctx = memory.context(body.query, user_id=scope.internal, max_tokens=body.max_tokens, categories=body.categories,
                         kinds=body.kinds, since=body.since, until=body.until, reference_time=body.reference_time)
    return out_context(scope.tenant, ctx)


@router.get(MEM, response_model=MemoryRecord, tags=["memories"])
def get_memory(memory_id: MemoryId, scope: ScopeDep, memory: MemoryDep,
               include_deleted: Annotated[QueryBool, Query(description="true or false")] = False) -> MemoryRecord:
    return out_record(scope.tenant, memory.get(memory_id, user_id=scope.internal, include_deleted=include_deleted))


@router.patch(MEM, response_model=MemoryRecord, tags=["memories"])
def update_memory(memory_id: MemoryId, body: UpdateBody, scope: ScopeDep, memory: MemoryDep) -> MemoryRecord:
    """Change a memory in place (same id, version + 1, the old text kept in its history)."""
    record = memory.update(memory_id, body.text, user_id=scope.internal, categories=body.categories,
                           metadata=body.metadata, observed_at=body.observed_at, actor=scope.actor,
                           reason=body.reason)
    return out_record(scope.tenant, record)


@router.delete(MEM, response_model=MemoryRecord, tags=["memories"])
def delete_memory(memory_id: MemoryId, scope: ScopeDep, memory: MemoryDep,
                  reason: Annotated[str | None, Query(max_length=MAX_REASON_CHARS)] = None) -> MemoryRecord:
    """Soft delete (restorable)."""
    return out_record(scope.tenant, memory.delete(memory_id, user_id=scope.internal, actor=scope.actor,
                                                  reason=reason))


@router.post(MEM + "/restore", response_model=MemoryRecord, tags=["memories"])
def restore_memory(memory_id: MemoryId, scope: ScopeDep, memory: MemoryDep,
                   body: ReasonBody | None = None) -> MemoryRecord:
    reason = body.reason if body else None
    return out_record(scope.tenant, memory.restore(memory_id, user_id=scope.internal, actor=scope.actor,
                                                   reason=reason))


@router.get(MEM + "/history", response_model=HistoryResponse, tags=["memories"])
def memory_history(memory_id: MemoryId, scope: ScopeDep, memory: MemoryDep) -> HistoryResponse:
    """Every change of one memory, oldest first."""
    events = memory.history(memory_id, user_id=scope.internal)
    return HistoryResponse(events=[out_event(scope.tenant, e) for e in events])


@router.delete(USER, response_model=ForgetResult, tags=["users"])
def forget_user(scope: ScopeDep, memory: MemoryDep) -> ForgetResult:
    """Erase the user everywhere (memories, deleted ones, history). Not undoable."""
    result = memory.forget_user(scope.internal)
    return result.model_copy(update={"user_id": scope.user})


@router.get(USER + "/export", tags=["users"], response_class=Response,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "remem export JSONL"}})
def export_user(scope: ScopeDep, memory: MemoryDep) -> Response:
    """The user's memories (incl. deleted) and history in remem's JSONL export format. User ids appear in
    their stored form ``<tenant>:<user>`` so the file imports losslessly with ``remem import``."""
    with tempfile.TemporaryDirectory(prefix="remem-export-") as tmp:
        path = Path(tmp) / "export.jsonl"
        memory.export(path, user_id=scope.internal)
        data = path.read_bytes()
    return Response(data, media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{scope.user}.jsonl"'})


@router.post(USER + "/chat", response_model=ChatResponse, tags=["chat"])
def chat(body: ChatBody, scope: ScopeDep, request: Request) -> ChatResponse:
    """One turn with the memory agent (needs an LM: ``remem serve --lm`` / ``REMEM_LM``)."""
    agent = request.app.state.agent
    if agent is None:
        raise NoLanguageModelError("no LM configured: start the server with --lm <model> or REMEM_LM")
    out = agent.reply(scope.internal, body.message,
                      now=reference_time(None, body.timezone))  # a remem.pipeline.AgentReply
    return ChatResponse(reply=out.response, data=out.model_dump(mode="json"))
