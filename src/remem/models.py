"""The public data model: what goes into remem and what comes out.

Everything crossing the public API is a pydantic v2 model. Timestamps are timezone-aware UTC; naive datetimes
given by callers are taken as UTC (documented, not guessed per call site).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MemoryKind = Literal["episode", "fact"]


def utcnow() -> datetime:
    """Now, UTC, microsecond precision (what every store round-trips losslessly)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive datetime is read as UTC; an aware one is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def normalize_text(text: str) -> str:
    """The form two texts must share to count as exact duplicates: case- and whitespace-insensitive."""
    return " ".join(text.casefold().split())


def content_hash(text: str) -> str:
    """sha256 of :func:`normalize_text`; exact-duplicate detection is scoped per user by the caller."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Message(_Model):
    """One conversation turn. ``id`` is the caller's id for the turn (kept as the memory's source id)."""

    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str
    name: str | None = Field(default=None, description="Speaker name, e.g. 'Caroline'.")
    timestamp: datetime | None = None
    id: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)


class MemoryRecord(_Model):
    """A stored memory.

    ``kind`` is ``episode`` for a raw turn and ``fact`` for a distilled factoid; ``source_ids`` are the ids of the
    messages a memory came from. ``observed_at`` is the time the fact refers to (or, for a turn, when it was said);
    time filters use it. ``deleted_at`` set means soft-deleted: hidden from search/list, restorable.
    """

    id: str = Field(default_factory=new_id)
    user_id: str
    text: str
    kind: MemoryKind = "fact"
    categories: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    observed_at: datetime | None = None
    source_ids: list[str] = Field(default_factory=list)
    role: str | None = None
    speaker: str | None = None
    session_id: str | None = None
    seq: int | None = Field(default=None, description="Order of the turn within its conversation/session.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    hash: str = ""
    version: int = 1
    deleted_at: datetime | None = None

    @field_validator("created_at", "updated_at", "observed_at", "deleted_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)

    def model_post_init(self, context: Any, /) -> None:
        if not self.hash:
            object.__setattr__(self, "hash", content_hash(self.text))

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class SearchHit(_Model):
    """A search result: the record, its fused score, and the raw score of each signal that found it."""

    record: MemoryRecord
    score: float
    signals: dict[str, float] = Field(default_factory=dict, description="signal name -> raw score, e.g. dense/bm25")
    ranks: dict[str, int] = Field(default_factory=dict, description="signal name -> 1-based rank in that signal")
    context: list[MemoryRecord] = Field(
        default_factory=list, description="neighbouring turns of the same session (search expand_neighbors)"
    )

    @property
    def source_ids(self) -> list[str]:
        """Source ids of the hit and its context, in conversation order, without repeats."""
        records = sorted([self.record, *self.context], key=lambda r: (r.seq is None, r.seq or 0))
        return list(dict.fromkeys(s for r in records for s in r.source_ids))


class EventType(str, Enum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    RESTORE = "RESTORE"
    NOOP = "NOOP"


class HistoryEvent(_Model):
    """One recorded change of one memory. ``snapshot`` is the whole record after the change."""

    id: int | None = None
    memory_id: str
    user_id: str
    event: EventType
    old_text: str | None = None
    new_text: str | None = None
    actor: str = "api"
    created_at: datetime = Field(default_factory=utcnow)
    reason: str | None = None
    snapshot: MemoryRecord | None = None

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return as_utc(v)


class MemoryEvent(_Model):
    """What an add/maintenance step did to one memory (NOOP included, so nothing happens silently)."""

    event: EventType
    memory_id: str | None = None
    text: str | None = None
    old_text: str | None = None
    reason: str | None = None


class LLMUsage(_Model):
    """LLM cost of one operation."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            seconds=self.seconds + other.seconds,
        )


class AddResult(_Model):
    """The outcome of :meth:`remem.Memory.add`: one event per memory touched, plus LLM usage when one ran."""

    events: list[MemoryEvent] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)

    @property
    def added(self) -> list[MemoryEvent]:
        return [e for e in self.events if e.event is EventType.ADD]


class Page(_Model):
    """A page of records; pass ``next_offset`` back as ``offset`` to continue (None: no more)."""

    items: list[MemoryRecord]
    next_offset: int | None = None
    total: int


class ForgetResult(_Model):
    """What :meth:`remem.Memory.forget_user` removed."""

    user_id: str
    memories: int
    history_events: int
    other: dict[str, int] = Field(default_factory=dict)


class Stats(_Model):
    users: int
    memories: int
    deleted: int
    history_events: int
    store: str
    embedder: str
    data_dir: str | None = None


class ContextItem(_Model):
    """One block of a :class:`Context`: a core fact, a retrieved fact, or an excerpt of one session's turns.

    ``text`` is the block's Markdown as it appears in :attr:`Context.text`; ``tokens`` its estimated share of the
    budget (cl100k tokens of its lines, headers included). ``records`` are the memories shown, in order;
    ``source_ids`` the ids of the turns they come from. ``observed_at`` is the time of the first record
    (``observed_at``, else ``created_at``). ``score`` is the retrieval value the packer gave the block (0 for core
    facts, which are chosen by recency, not by the query).
    """

    kind: Literal["core", "fact", "excerpt"]
    text: str
    tokens: int
    score: float = 0.0
    observed_at: datetime
    session_id: str | None = None
    memory_ids: list[str] = Field(default_factory=list)
    source_ids: list[str] = Field(default_factory=list)
    records: list[MemoryRecord] = Field(default_factory=list)


class Context(_Model):
    """What :meth:`remem.Memory.context` returns: the best memory for ``query`` that fits ``max_tokens``.

    ``text`` is the prompt-ready Markdown block (empty when nothing fits or nothing is stored); ``tokens`` is its
    exact length in ``tokenizer`` tokens and never exceeds ``max_tokens``. ``items`` are its blocks in the order
    shown (core facts first, then the retrieved memories oldest first).
    """

    query: str
    user_id: str
    max_tokens: int
    tokens: int
    tokenizer: str
    text: str
    items: list[ContextItem] = Field(default_factory=list)

    @property
    def source_ids(self) -> list[str]:
        """Every source id the context covers, without repeats, in the order shown."""
        return list(dict.fromkeys(s for item in self.items for s in item.source_ids))
