"""History, pending queue, locks and keys behind small protocols (:mod:`.base`), on SQLite (embedded default)
or Postgres (``REMEM_DATABASE_URL``). :func:`open_storage` picks the backend from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .base import Database, History, Intent, Job, JobPayload, JobQueue, Locks
from .history import SQLHistory
from .locks import LocalLocks
from .queue import SQLQueue


@dataclass
class Storage:
    """The non-vector storage of one Memory: one database holding history and queue, and the user locks."""

    database: Database
    history: History
    queue: JobQueue
    locks: Locks

    def close(self) -> None:
        self.database.close()


def open_storage(settings: Settings, home: Path) -> Storage:
    """SQLite under ``home`` (``history.sqlite3``, in-process locks), or Postgres at ``settings.database_url``
    (pooled connections, advisory locks shared by every process on that database)."""
    if settings.database_url:
        from .postgres import PostgresDatabase, PostgresLocks

        pg = PostgresDatabase(settings.database_url, pool_size=settings.database_pool_size)
        return Storage(database=pg, history=SQLHistory(pg), queue=SQLQueue(pg), locks=PostgresLocks(pg))
    from .sqlite.db import SQLiteDatabase

    db = SQLiteDatabase(home / "history.sqlite3")
    return Storage(database=db, history=SQLHistory(db), queue=SQLQueue(db), locks=LocalLocks())


__all__ = ["Database", "History", "Intent", "Job", "JobPayload", "JobQueue", "Locks", "Storage", "open_storage"]
