"""The durable pending queue: turns waiting for (or failing) extraction + maintenance.

It lives in the history database (one SQLite file, one ``forget_user`` transaction): a job is written *before*
any LLM call, so a crash, a timeout or unusable model output never loses what the user said. A job moves
``pending`` → ``done``; a failure keeps it ``pending`` with its attempt count, last error and the raw model
output, for ``remem reprocess`` / :meth:`remem.pipeline.Pipeline.reprocess`. ``stage`` records whether the raw
turns (episodes) are already stored, so a retry never stores them twice.

This module imports no LLM code: :class:`remem.Memory` registers the table and its eraser on every history
database, so ``forget_user`` purges queued turns even when no language model is configured.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..history import History, register_migration
from ..models import Message, utcnow

QUEUE_MIGRATION = 10
register_migration(
    QUEUE_MIGRATION,
    """
    CREATE TABLE IF NOT EXISTS pending_jobs (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL,
        stage TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        raw_output TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS pending_jobs_status ON pending_jobs(status, created_at);
    CREATE INDEX IF NOT EXISTS pending_jobs_user ON pending_jobs(user_id)
    """,
)

JobStatus = Literal["pending", "done"]
JobStage = Literal["new", "stored"]


class JobPayload(BaseModel):
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


def _erase(conn: sqlite3.Connection, user_id: str) -> int:
    return conn.execute("DELETE FROM pending_jobs WHERE user_id=?", (user_id,)).rowcount


def register_queue(log: History) -> None:
    """Create the table (migration) and register its eraser on a history database (idempotent)."""
    log.migrate()
    log.add_eraser("pending_jobs", _erase)


class PendingQueue:
    """Jobs in the history database of one :class:`~remem.Memory`."""

    _COLUMNS = "id, user_id, status, stage, payload, attempts, last_error, raw_output, created_at, updated_at"

    def __init__(self, log: History) -> None:
        register_queue(log)
        self.log = log

    def enqueue(self, user_id: str, payload: JobPayload) -> str:
        job_id = str(uuid.uuid4())
        now = utcnow().isoformat()
        with self.log.transaction() as conn:
            conn.execute(
                f"INSERT INTO pending_jobs ({self._COLUMNS}) VALUES (?, ?, 'pending', 'new', ?, 0, NULL, NULL, ?, ?)",
                (job_id, user_id, payload.model_dump_json(), now, now),
            )
        return job_id

    def _set(self, job_id: str, sql: str, *args: object) -> None:
        with self.log.transaction() as conn:
            conn.execute(f"UPDATE pending_jobs SET {sql}, updated_at=? WHERE id=?",
                         (*args, utcnow().isoformat(), job_id))

    def mark_stored(self, job_id: str) -> None:
        self._set(job_id, "stage='stored'")

    def mark_done(self, job_id: str) -> None:
        self._set(job_id, "status='done', last_error=NULL, raw_output=NULL")

    def mark_failed(self, job_id: str, error: str, raw_output: str | None) -> None:
        self._set(job_id, "attempts=attempts+1, last_error=?, raw_output=?", error, raw_output)

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Job:
        (id_, user_id, status, stage, payload, attempts, last_error, raw_output, created, updated) = row
        return Job(
            id=id_, user_id=user_id, status=status, stage=stage,
            payload=JobPayload.model_validate_json(payload), attempts=attempts, last_error=last_error,
            raw_output=raw_output, created_at=datetime.fromisoformat(created),
            updated_at=datetime.fromisoformat(updated),
        )

    def get(self, job_id: str) -> Job | None:
        with self.log.transaction() as conn:
            row = conn.execute(f"SELECT {self._COLUMNS} FROM pending_jobs WHERE id=?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def pending(self, user_id: str | None = None, limit: int | None = None) -> list[Job]:
        """Pending jobs, oldest first (``user_id=None``: every user)."""
        sql = f"SELECT {self._COLUMNS} FROM pending_jobs WHERE status='pending'"
        args: list[object] = []
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        sql += " ORDER BY created_at, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.log.transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._row(r) for r in rows]

    def count(self, status: JobStatus = "pending", user_id: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM pending_jobs WHERE status=?"
        args: list[object] = [status]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        with self.log.transaction() as conn:
            return int(conn.execute(sql, args).fetchone()[0])
