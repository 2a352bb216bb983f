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
    categories: list[str] | None = None
    metadata: dict[str, Any] | None = None
    session_id: str | None = None


class SearchBody(_Body):
    query: str
    limit: int = 10
    categories: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    threshold: float | None = None


class ContextBody(_Body):
    query: str
    max_tokens: int = Field(1000, description="Hard cap on the cl100k tokens of the returned text (1-200000).")
    categories: list[str] | None = None
    kinds: list[Literal["episode", "fact"]] | None = None
    since: datetime | None = None
    until: datetime | None = None
    reference_time: datetime | None = Field(None, description="'now' for time expressions in the query.")


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


__all__ = ["AddBody", "ChatBody", "ChatResponse", "ContextBody", "Health", "HistoryResponse", "KeyCreateBody", "Message",
           "Ready", "ReasonBody", "SearchBody", "SearchResponse", "UpdateBody", "UsersResponse", "Whoami"]
