"""Request and response bodies of the REST API (results reuse :mod:`remem.models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import HistoryEvent, Message, SearchHit
from .auth import Role


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddBody(_Body):
    messages: str | list[str | Message] = Field(
        description="A string (one fact), or a list of strings/messages (raw: one memory each)."
    )
    infer: bool = Field(False, description="Run the LLM pipeline (extract + maintain); needs a configured LM.")
    background: bool = Field(False, description="With infer: answer once the turns are queued and stored as "
                             "episodes (pending=true, job_id); a worker extracts and maintains the facts.")
    categories: list[str] | None = None
    metadata: dict[str, Any] | None = None
    session_id: str | None = None


class SearchBody(_Body):
    query: str
    limit: int = 10
    categories: list[str] | None = None
    since: datetime | None = Field(None, description="Naive = UTC, or wall time in `timezone` when given.")
    until: datetime | None = Field(None, description="Naive = UTC, or wall time in `timezone` when given.")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    threshold: float | None = None
    time_expressions: Literal["boost", "filter", "off"] = Field(
        "boost", description="What a time expression in the query ('yesterday', 'last week', 'in May') does "
                             "when since/until are not given: boost memories of that time, filter to it, or off.")
    reference_time: datetime | None = Field(
        None, description="The moment relative expressions are counted from (default: now); its offset, or "
                          "`timezone`, sets the calendar they are counted on. Naive = UTC.")
    timezone: str | None = Field(
        None, description="IANA time zone of the caller (e.g. Europe/Berlin): 'yesterday' is counted on its "
                          "calendar (DST-exact). Default: the offset of reference_time, else UTC.")


class UpdateBody(_Body):
    text: str | None = None
    categories: list[str] | None = None
    metadata: dict[str, Any] | None = None
    observed_at: datetime | None = None
    reason: str | None = Field(None, max_length=500)


class ReasonBody(_Body):
    reason: str | None = Field(None, max_length=500)


class ChatBody(_Body):
    message: str
    timezone: str | None = Field(
        None, description="IANA time zone of the user (e.g. Europe/Berlin): the agent sees the local time and "
                          "counts 'yesterday' on that calendar. Default: UTC.")


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class HistoryResponse(BaseModel):
    events: list[HistoryEvent]


class UsersResponse(BaseModel):
    users: list[str]


class ChatResponse(BaseModel):
    """``reply`` is the agent's answer; ``data`` the whole ``remem.pipeline.AgentReply`` (tool calls, memory
    events, usage)."""

    reply: str
    data: dict[str, Any] | None = None


class Health(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str
    store: str
    embedder: str
    lm: bool


class Whoami(BaseModel):
    key_id: str
    role: Role
    tenant: str | None = None


class KeyCreateBody(_Body):
    role: Role = "tenant"
    tenant: str | None = None
    label: str | None = None


__all__ = ["AddBody", "ChatBody", "ChatResponse", "Health", "HistoryResponse", "KeyCreateBody", "Message",
           "Ready", "ReasonBody", "SearchBody", "SearchResponse", "UpdateBody", "UsersResponse", "Whoami"]
