"""The durable pending queue of the LLM pipeline, in portable SQL over a :class:`~remem.storage.base.Database`.

It lives in the history database (one ``forget_user`` transaction erases queued turns with the history): a job
is written *before* any LLM call, so a crash, a timeout or unusable model output never loses what the user said.
A job moves ``pending`` → ``done``; a failure keeps it ``pending`` with its attempt count, last error and the raw
model output, for ``remem reprocess``. ``stage`` records whether the raw turns (episodes) are stored, so a retry
never stores them twice. :meth:`SQLQueue.claim` leases a job to one worker (``claimed_by``/``claimed_until``),
atomically across processes: the claim is one conditional ``UPDATE``. A worker may skip jobs that failed
``max_attempts`` times (left to ``remem reprocess``) and jobs that failed less than ``retry_after`` seconds ago.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from ..models import utcnow
from .base import Database, Job, JobPayload, JobStatus, Row

_COLUMNS = ("id, user_id, status, stage, payload, attempts, last_error, raw_output, created_at, updated_at, "
            "claimed_by, claimed_until")


def _job(row: Row) -> Job:
    (id_, user_id, status, stage, payload, attempts, last_error, raw_output, created, updated, by, until) = row
    return Job(id=id_, user_id=user_id, status=status, stage=stage, payload=JobPayload.model_validate_json(payload),
               attempts=attempts, last_error=last_error, raw_output=raw_output,
               created_at=datetime.fromisoformat(created), updated_at=datetime.fromisoformat(updated),
               claimed_by=by, claimed_until=datetime.fromisoformat(until) if until else None)


class SQLQueue:
    """:class:`~remem.storage.base.JobQueue` on SQLite or Postgres."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def enqueue(self, user_id: str, payload: JobPayload, *, claimed_by: str | None = None,
                lease_seconds: float = 0.0) -> str:
        job_id = str(uuid.uuid4())
        now = utcnow()
        until = (now + timedelta(seconds=lease_seconds)).isoformat() if claimed_by is not None else None
        with self.database.transaction() as tx:
            tx.execute(
                "INSERT INTO pending_jobs (id, user_id, status, stage, payload, attempts, created_at, updated_at,"
                " claimed_by, claimed_until) VALUES (?, ?, 'pending', 'new', ?, 0, ?, ?, ?, ?)",
                (job_id, user_id, payload.model_dump_json(), now.isoformat(), now.isoformat(), claimed_by, until),
            )
        return job_id

    def _set(self, job_id: str, sql: str, *args: object) -> None:
        with self.database.transaction() as tx:
            tx.execute(f"UPDATE pending_jobs SET {sql}, updated_at=? WHERE id=?", (*args, utcnow().isoformat(), job_id))

    def mark_stored(self, job_id: str) -> None:
        self._set(job_id, "stage='stored'")

    def mark_done(self, job_id: str) -> None:
        self._set(job_id, "status='done', last_error=NULL, raw_output=NULL, claimed_by=NULL, claimed_until=NULL")

    def mark_failed(self, job_id: str, error: str, raw_output: str | None) -> None:
        self._set(job_id, "attempts=attempts+1, last_error=?, raw_output=?, claimed_by=NULL, claimed_until=NULL",
                  error, raw_output)

    def get(self, job_id: str) -> Job | None:
        with self.database.read() as tx:
            row = tx.fetchone(f"SELECT {_COLUMNS} FROM pending_jobs WHERE id=?", (job_id,))
        return _job(row) if row else None

    def pending(self, user_id: str | None = None, limit: int | None = None) -> list[Job]:
        sql = f"SELECT {_COLUMNS} FROM pending_jobs WHERE status='pending'"
        args: list[Any] = []
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self.database.read() as tx:
            return [_job(r) for r in tx.fetchall(sql, args)]

    def count(self, status: JobStatus = "pending", user_id: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM pending_jobs WHERE status=?"
        args: list[Any] = [status]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        with self.database.read() as tx:
            row = tx.fetchone(sql, args)
        return int(row[0]) if row else 0

    def claim(self, worker: str, lease_seconds: float, job_id: str | None = None, *,
              max_attempts: int | None = None, retry_after: float = 0.0) -> Job | None:
        now = utcnow()
        until = (now + timedelta(seconds=lease_seconds)).isoformat()
        free = "status='pending' AND (claimed_until IS NULL OR claimed_until < ?)"
        args: list[Any] = [now.isoformat()]
        if max_attempts is not None:
            free += " AND attempts < ?"
            args.append(int(max_attempts))
        if retry_after > 0:
            free += " AND (attempts = 0 OR updated_at < ?)"
            args.append((now - timedelta(seconds=retry_after)).isoformat())
        update = f"UPDATE pending_jobs SET claimed_by=?, claimed_until=? WHERE id=? AND {free}"
        with self.database.transaction() as tx:
            if job_id is not None:
                if not tx.execute(update, (worker, until, job_id, *args)):
                    return None
            else:
                # Another worker may take the oldest free job between our SELECT and UPDATE (Postgres, READ
                # COMMITTED): the UPDATE then changes nothing and we look again, so a busy queue is not "empty".
                for _ in range(8):
                    row = tx.fetchone(f"SELECT id FROM pending_jobs WHERE {free} ORDER BY created_at, id LIMIT 1",
                                      args)
                    if row is None:
                        return None
                    if tx.execute(update, (worker, until, str(row[0]), *args)):
                        job_id = str(row[0])
                        break
                else:
                    return None
            got = tx.fetchone(f"SELECT {_COLUMNS} FROM pending_jobs WHERE id=?", (job_id,))
        return _job(got) if got else None

    def release(self, job_id: str, worker: str) -> None:
        with self.database.transaction() as tx:
            tx.execute("UPDATE pending_jobs SET claimed_by=NULL, claimed_until=NULL WHERE id=? AND claimed_by=?",
                       (job_id, worker))
