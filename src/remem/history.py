"""The history log: every change of every memory, in SQLite.

WAL journal, a busy timeout, ``secure_delete`` (erased rows are overwritten on disk, not just unlinked) and
numbered schema migrations tracked in ``PRAGMA user_version``. Each event stores a snapshot of the whole record
after the change, so a memory can always be rebuilt from its history (restore, export, reindex).

Other modules that persist per-user data in the same database (e.g. the pending queue) register their own
migrations with :func:`register_migration` and their erasure with :meth:`History.add_eraser`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from .errors import StoreError
from .models import EventType, HistoryEvent, MemoryRecord

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            memory_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            event TEXT NOT NULL,
            old_text TEXT,
            new_text TEXT,
            actor TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            snapshot TEXT
        );
        CREATE INDEX events_memory ON events(memory_id, id);
        CREATE INDEX events_user ON events(user_id);
        """,
    ),
]


def register_migration(version: int, sql: str) -> None:
    """Add a numbered migration (idempotent registration; versions must be unique)."""
    if any(v == version for v, _ in MIGRATIONS):
        return
    MIGRATIONS.append((version, sql))
    MIGRATIONS.sort()


Eraser = Callable[[sqlite3.Connection, str], int]


class History:
    """SQLite-backed event log. Thread-safe: one connection, serialised by a lock (operations are short)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._erasers: dict[str, Eraser] = {}
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the history database {self.path}: {exc}", path=self.path) from exc
        try:
            with self._lock:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA busy_timeout=30000")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("PRAGMA secure_delete=ON")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self.migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot prepare the history database {self.path}: {exc}", path=self.path) from exc

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def migrate(self) -> int:
        """Apply pending migrations in order; returns the schema version."""
        with self._lock:
            current = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            for version, sql in MIGRATIONS:
                if version <= current:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in sql.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={version}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                current = version
            return current

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def add_eraser(self, name: str, eraser: Eraser) -> None:
        """Register extra per-user data to purge in :meth:`forget_user` (runs in the same transaction)."""
        self._erasers[name] = eraser

    # -- events --------------------------------------------------------------------------------------------
    def record(self, events: Sequence[HistoryEvent], conn: sqlite3.Connection | None = None) -> None:
        rows = [
            (
                e.memory_id,
                e.user_id,
                e.event.value,
                e.old_text,
                e.new_text,
                e.actor,
                e.reason,
                e.created_at.isoformat(),
                e.snapshot.model_dump_json() if e.snapshot is not None else None,
            )
            for e in events
        ]
        sql = (
            "INSERT INTO events (memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        if conn is not None:
            conn.executemany(sql, rows)
            return
        with self.transaction() as c:
            c.executemany(sql, rows)

    def delete_memories(self, memory_ids: Sequence[str], conn: sqlite3.Connection) -> int:
        """Drop every event of these memories (an import with ``overwrite`` replaces their history)."""
        removed = 0
        for memory_id in memory_ids:
            removed += conn.execute("DELETE FROM events WHERE memory_id=?", (memory_id,)).rowcount
        return removed

    @staticmethod
    def _row(row: tuple[object, ...]) -> HistoryEvent:
        (id_, memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot) = row
        return HistoryEvent(
            id=int(id_),  # type: ignore[call-overload]
            memory_id=str(memory_id),
            user_id=str(user_id),
            event=EventType(event),
            old_text=old_text,  # type: ignore[arg-type]
            new_text=new_text,  # type: ignore[arg-type]
            actor=str(actor),
            reason=reason,  # type: ignore[arg-type]
            created_at=datetime.fromisoformat(str(created_at)),
            snapshot=MemoryRecord.model_validate_json(str(snapshot)) if snapshot else None,
        )

    _COLUMNS = "id, memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot"

    def for_memory(self, memory_id: str, user_id: str) -> list[HistoryEvent]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._COLUMNS} FROM events WHERE memory_id=? AND user_id=? ORDER BY id",
                (memory_id, user_id),
            ).fetchall()
        return [self._row(r) for r in rows]

    def for_user(self, user_id: str | None) -> list[HistoryEvent]:
        """All events of a user, oldest first (``None``: every user, the admin/export path)."""
        with self._lock:
            if user_id is None:
                rows = self._conn.execute(f"SELECT {self._COLUMNS} FROM events ORDER BY id").fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT {self._COLUMNS} FROM events WHERE user_id=? ORDER BY id", (user_id,)
                ).fetchall()
        return [self._row(r) for r in rows]

    def users(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT user_id FROM events ORDER BY user_id")]

    def count(self, user_id: str | None = None) -> int:
        with self._lock:
            if user_id is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            return int(self._conn.execute("SELECT COUNT(*) FROM events WHERE user_id=?", (user_id,)).fetchone()[0])

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete every row of the user (events and registered extras) and checkpoint the WAL."""
        with self.transaction() as conn:
            removed = {"history_events": conn.execute("DELETE FROM events WHERE user_id=?", (user_id,)).rowcount}
            for name, eraser in self._erasers.items():
                removed[name] = eraser(conn, user_id)
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def dump_event(event: HistoryEvent) -> str:
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
