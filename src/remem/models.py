"""The public data model: what goes into remem and what comes out.

Everything crossing the public API is a pydantic v2 model. Stored times (records, history events) are
timezone-aware UTC instants; naive datetimes given by callers are taken as UTC (documented, not guessed per call
site). A :class:`Message` keeps its timestamp's own offset: the pipeline resolves "yesterday" on the sender's
calendar and shows the LM that local time (see :mod:`remem.timeexpr`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .bounds import (
    INT64_MAX,
    MAX_LABEL_CHARS,
    MAX_TEXT_CHARS_LIMIT,
    bad_char,
    check_datetime,
    check_metadata,
    check_optional_label,
    check_str,
    fail,
    refuse_epoch,
)

MemoryKind = Literal["episode", "fact"]
#: What a stored record may be: a memory (episode or fact) or an index chunk of a long memory (remem.chunking).
RecordKind = Literal["episode", "fact", "chunk"]


def utcnow() -> datetime:
    """Now, UTC, microsecond precision (what every store round-trips losslessly)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive datetime is read as UTC; an aware one is converted to UTC (:class:`~remem.errors.ValidationError`
    when that UTC time falls outside years 1-9999)."""
    return check_datetime(value, "datetime")


def _utc_or_none(value: datetime | None, info: ValidationInfo) -> datetime | None:
    return None if value is None else check_datetime(value, info.field_name or "datetime")


def _check_storable(model: BaseModel, fields: tuple[str, ...], lists: tuple[str, ...] = ()) -> None:
    """No NUL and no lone surrogate in the string fields: what every store, SQLite and a JSON response can hold.
    One pass per model (records are validated on every store read: this keeps that cheap)."""
    for name in fields:
        value = getattr(model, name)
        if value is not None and (not value.isascii() or "\x00" in value):
            problem = bad_char(value)
            if problem is not None:
                raise fail(name, problem)
    for name in lists:
        for i, value in enumerate(getattr(model, name)):
            if not value.isascii() or "\x00" in value:
                problem = bad_char(value)
                if problem is not None:
                    raise fail(f"{name}[{i}]", problem)


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
    """One conversation turn. ``id`` is the caller's id for the turn (kept as the memory's source id).

    ``timestamp`` is when it was said. An aware timestamp keeps the offset (or ``ZoneInfo``) it was given in —
    the sender's local time, on whose calendar the pipeline resolves relative dates ("yesterday" in a message of
    2023-05-08T00:30+02:00 is 7 May) and which the LM is shown; a naive one is UTC. The stored episode's
    ``observed_at`` is the same instant in UTC.

    Limits (:mod:`remem.bounds`): ``content`` without NUL or lone surrogates (its length is checked against
    ``REMEM_MAX_TEXT_CHARS`` by :meth:`remem.Memory.add`); ``name`` and ``id`` at most 200 characters without
    control characters; ``timestamp`` naive (= UTC) or aware with a UTC form in years 1-9999. A violation is a
    pydantic ``ValidationError`` here, a :class:`remem.ValidationError` naming the message from ``Memory.add``.
    """

    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str
    name: str | None = Field(default=None, description="Speaker name, e.g. 'Caroline'.",
                             json_schema_extra={"maxLength": MAX_LABEL_CHARS})
    timestamp: datetime | None = Field(
        default=None, description="When it was said; keeps its UTC offset (the sender's local time); naive = UTC."
    )
    id: str | None = Field(default=None, json_schema_extra={"maxLength": MAX_LABEL_CHARS})

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return check_str(v, "content", max_len=MAX_TEXT_CHARS_LIMIT)

    @field_validator("name", "id")
    @classmethod
    def _labels(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_optional_label(v, info.field_name or "label")

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso(cls, v: object, info: ValidationInfo) -> object:
        return refuse_epoch(v, info)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        """Keep the sender's offset (naive = UTC), after checking the instant exists in UTC (years 1-9999)."""
        if v is None:
            return None
        check_datetime(v, info.field_name or "timestamp")
        return v if v.utcoffset() is not None else v.replace(tzinfo=UTC)


class MemoryRecord(_Model):
    """A stored memory.

    ``kind`` is ``episode`` for a raw turn and ``fact`` for a distilled factoid; ``source_ids`` are the ids of the
    messages a memory came from. ``observed_at`` is the time the fact refers to (or, for a turn, when it was said);
    time filters use it. ``deleted_at`` set means soft-deleted: hidden from search/list, restorable.
    """

    id: str = Field(default_factory=new_id)
    user_id: str
    text: str
    kind: RecordKind = "fact"
    categories: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    observed_at: datetime | None = None
    source_ids: list[str] = Field(default_factory=list)
    role: str | None = None
    speaker: str | None = None
    session_id: str | None = None
    seq: int | None = Field(default=None, ge=0, le=INT64_MAX,
                            description="Order of the turn within its conversation/session.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    hash: str = ""
    version: int = Field(default=1, ge=1, le=INT64_MAX)
    deleted_at: datetime | None = None
    parent_id: str | None = Field(default=None, description="for a chunk: the long memory it indexes a part of")

    @field_validator("created_at", "updated_at", "observed_at", "deleted_at")
    @classmethod
    def _utc(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        return _utc_or_none(v, info)

    @model_validator(mode="after")
    def _storable(self) -> Self:
        _check_storable(self, ("id", "user_id", "text", "role", "speaker", "session_id", "hash"),
                        ("categories", "source_ids"))
        if self.metadata:
            check_metadata(self.metadata, max_bytes=None)
        return self

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
    chunk: MemoryRecord | None = Field(
        default=None, description="for a long memory found by one of its parts: the part that matched"
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
        return check_datetime(v, "created_at")

    @model_validator(mode="after")
    def _storable(self) -> Self:
        _check_storable(self, ("memory_id", "user_id", "old_text", "new_text", "actor", "reason"))
        return self


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
    """The outcome of :meth:`remem.Memory.add`: one event per memory touched, plus LLM usage when one ran.

    With ``infer=True`` (the LLM pipeline), ``job_id`` names the turn's job in the pending queue; with
    ``background=True`` the call returns once the turn is queued and stored as episodes: ``pending`` is then
    True and ``events`` are those episodes (the facts follow when a worker has processed the job)."""

    events: list[MemoryEvent] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)
    job_id: str | None = None
    pending: bool = False

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
    lm_usage: LLMUsage = Field(default_factory=LLMUsage, description="LM calls, tokens and seconds spent by the "
                               "LLM pipeline and the chat agent, summed over every user (erased with the user)")


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
