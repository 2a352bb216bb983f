"""The durable pending queue of the pipeline (kept here under its old names).

The queue itself is storage: :class:`remem.storage.queue.SQLQueue` on the history database (SQLite or Postgres),
created by the numbered migrations of :mod:`remem.storage.migrations`, so ``forget_user`` erases queued turns
even when no language model is configured. See :mod:`remem.storage.queue` for the job life cycle.
"""

from __future__ import annotations

from typing import Any

from ..storage.base import Job, JobPayload, JobStage, JobStatus
from ..storage.queue import SQLQueue


class PendingQueue(SQLQueue):
    """The queue of a history database: ``PendingQueue(memory.log)`` or ``PendingQueue(database)``."""

    def __init__(self, source: Any) -> None:
        super().__init__(getattr(source, "database", source))


__all__ = ["Job", "JobPayload", "JobStage", "JobStatus", "PendingQueue"]
