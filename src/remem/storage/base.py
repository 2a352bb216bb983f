"""The storage contracts below the :class:`remem.Memory` facade (everything that is not vectors).

Four small protocols, each with an SQLite implementation (the embedded default) and a Postgres one (the server
deployment, ``REMEM_DATABASE_URL``):

- :class:`Database` — a connection (SQLite) or a pool (Postgres) with numbered migrations, transactions and the
  per-user erasure that runs every registered table's eraser in one transaction;
- :class:`History` — the event log (the system of record) and the *intents* that make a store write crash-safe;
- :class:`JobQueue` — the durable pending queue of the LLM pipeline;
- :class:`Locks` — per-user locks that serialise one user's writes (threads in one process; Postgres advisory
  locks across processes).

History, queue and keys are written once, in portable SQL, against :class:`Database` (``?`` placeholders; the
Postgres adapter translates them); only the migrations differ per dialect. API keys live in
:mod:`remem.storage.keys`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..models import HistoryEvent, MemoryRecord, Message

Dialect = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction (or an autocommit read session). SQL uses ``?`` placeholders on both dialects."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...


class Database(Protocol):
    """Where history, queue, keys (and, for pgvector, vectors) live."""

    dialect: Dialect
    url: str  # a path for SQLite, a postgresql:// URL (password removed) for Postgres

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises. Nested calls in the
        same thread join the outer transaction (so a pgvector write and its history event commit together)."""

    def read(self) -> AbstractContextManager[Tx]:
        """A connection for reads (joins the current transaction if the thread is inside one)."""

    def add_eraser(self, table: str, column: str = "user_id") -> None:
        """Register a table whose rows of a user :meth:`erase_user` deletes (``DELETE ... WHERE column=?``)."""

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Delete every row of the user in every registered table, in one transaction; counts per table."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


class Locks(Protocol):
    """Per-user mutual exclusion. ``scope`` separates independent lock spaces (``write``: one user's store and
    history writes; ``maintain``: one user's LLM maintenance run, which may last seconds). Re-entrant within a
    thread."""

    def hold(self, user_id: str, scope: str = "write") -> AbstractContextManager[None]: ...

    def held(self, user_id: str, scope: str = "write") -> bool:
        """Whether the current thread holds this lock."""


IntentOp = Literal["write", "forget"]
Direction = Literal["forward", "back"]


class Intent(BaseModel):
    """A store change announced in history before it is made (the write-ahead record of :mod:`remem.writer`).

    ``after`` maps each memory id to the record the store must hold once the change is done (``None``: the
    point is removed); ``before`` to what it held before. ``events`` are the history events the change records
    when it commits. Recovery rolls an intent ``forward`` (make the store hold ``after``, record the events) or
    ``back`` (make the store hold ``before``, record nothing); a ``forget`` intent is always finished.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    user_id: str
    op: IntentOp = "write"
    direction: Direction = "forward"
    events: list[HistoryEvent] = Field(default_factory=list)
    before: dict[str, MemoryRecord | None] = Field(default_factory=dict)
    after: dict[str, MemoryRecord | None] = Field(default_factory=dict)
    replace_history: list[str] = Field(default_factory=list, description="memory ids whose earlier events the "
                                       "commit drops (an import with overwrite replaces their history)")
    created_at: datetime


class History(Protocol):
    """The event log: every change of every memory, each event with a snapshot of the record after it."""

    database: Database

    def record(self, events: Sequence[HistoryEvent]) -> None:
        """Append events (inside the caller's transaction if there is one)."""

    # -- intents (crash-safe store writes) -------------------------------------------------------------------
    def begin(self, intents: Sequence[Intent]) -> None:
        """Persist intents (one transaction) before their store writes."""

    def commit(self, intents: Sequence[Intent]) -> None:
        """Record the intents' events and drop the intents, in one transaction (the change is now history)."""

    def abort(self, intent_ids: Sequence[str]) -> None:
        """Drop intents whose store writes were undone (nothing is recorded)."""

    def set_direction(self, intent_id: str, direction: Direction) -> None: ...

    def intents(self, user_id: str | None = None) -> list[Intent]:
        """Unfinished intents, oldest first (``None``: every user)."""

    def has_intents(self, user_id: str) -> bool: ...

    # -- reads -----------------------------------------------------------------------------------------------
    def for_memory(self, memory_id: str, user_id: str) -> list[HistoryEvent]: ...

    def for_user(self, user_id: str | None) -> list[HistoryEvent]:
        """Every event of a user, oldest first (``None``: every user, the admin/export path)."""

    def iter_user(self, user_id: str, batch: int = 1000) -> Iterator[HistoryEvent]:
        """The same as :meth:`for_user`, streamed (bounded memory for large histories)."""

    def latest(self, user_id: str) -> dict[str, HistoryEvent]:
        """The last event with a snapshot of each memory of the user (what the store must hold)."""

    def users(self) -> list[str]: ...

    def count(self, user_id: str | None = None) -> int: ...

    def delete_memories(self, memory_ids: Sequence[str]) -> int:
        """Drop every event of these memories (an import with ``overwrite`` replaces their history)."""

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Erase the user from every table of the database (events, intents, queue, registered extras)."""

    def close(self) -> None: ...


# -- the pending queue -----------------------------------------------------------------------------------------
JobStatus = Literal["pending", "done"]
JobStage = Literal["new", "stored"]


class JobPayload(BaseModel):
    """What a queued job carries: the turns, the context shown to the extractor, and the add options."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    context: list[Message] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list)
    session_id: str | None = None
    actor: str = "pipeline"


class Job(BaseModel):
    """One queued unit of work: the turns of one ``add(infer=True)`` (or one chat turn to remember)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    user_id: str
    status: JobStatus
    stage: JobStage
    payload: JobPayload
    attempts: int = 0
    last_error: str | None = None
    raw_output: str | None = None
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None


class JobQueue(Protocol):
    """Durable jobs of the LLM pipeline (see :mod:`remem.storage.queue`)."""

    def enqueue(self, user_id: str, payload: JobPayload, *, claimed_by: str | None = None,
                lease_seconds: float = 0.0) -> str:
        """Queue a job (``claimed_by``: already claimed by that worker for ``lease_seconds``, in the same write,
        so no other worker can take it before its submitter has stored its turns)."""

    def get(self, job_id: str) -> Job | None: ...

    def mark_stored(self, job_id: str) -> None: ...

    def mark_done(self, job_id: str) -> None: ...

    def mark_failed(self, job_id: str, error: str, raw_output: str | None) -> None: ...

    def pending(self, user_id: str | None = None, limit: int | None = None) -> list[Job]: ...

    def count(self, status: JobStatus = "pending", user_id: str | None = None) -> int: ...

    def claim(self, worker: str, lease_seconds: float, job_id: str | None = None, *,
              max_attempts: int | None = None, retry_after: float = 0.0) -> Job | None:
        """Claim one pending job (or ``job_id``), oldest first, for ``worker`` until the lease ends; ``None`` if
        there is none free. A job is claimed by one worker at a time, across processes. ``max_attempts``: skip
        jobs that failed that often; ``retry_after``: skip jobs whose last failure is more recent (seconds)."""

    def release(self, job_id: str, worker: str) -> None: ...
