"""The SQLite :class:`~remem.storage.base.Database`: one file, WAL, ``secure_delete``, numbered migrations.

One connection shared by the process's threads behind a re-entrant lock (operations are short; SQLite allows
one writer at a time anyway). ``secure_delete`` overwrites erased rows on disk and :meth:`erase_user`
checkpoints the WAL, so erased text leaves the files.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ..base import Dialect, Row
from ..migrations import MIGRATIONS, USER_TABLES, statements


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return tuple(row) if row is not None else None


class SQLiteDatabase:
    """History, queue (and keys, in their own file) on SQLite. Thread-safe."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path, *, migrate: bool = True) -> None:
        self.url = str(path)
        if self.url != ":memory:":
            Path(self.url).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = threading.local()
        self._tables: dict[str, str] = dict(USER_TABLES)
        try:
            self._conn = sqlite3.connect(self.url, check_same_thread=False, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the history database {self.url}: {exc}", path=self.url) from exc
        try:
            with self._lock:
                for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "secure_delete=ON",
                               "foreign_keys=ON"):
                    self._conn.execute(f"PRAGMA {pragma}")
                if migrate:
                    self.migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot prepare the history database {self.url}: {exc}", path=self.url) from exc

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection (tests and byte-level erasure checks)."""
        return self._conn

    def migrate(self) -> int:
        """Apply pending migrations in order, each in its own transaction; returns the schema version."""
        with self._lock:
            current = self.schema_version()
            for version, sql in MIGRATIONS["sqlite"]:
                if version <= current:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version={int(version)}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                current = version
            return current

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """An IMMEDIATE transaction (nested calls in the same thread join it)."""
        with self._lock:
            depth = getattr(self._depth, "n", 0)
            if depth:
                self._depth.n = depth + 1
                try:
                    yield _Tx(self._conn)
                finally:
                    self._depth.n = depth
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth.n = 1
            try:
                yield _Tx(self._conn)
            except BaseException:
                self._depth.n = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth.n = 0
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"cannot commit to the history database: {exc}", path=self.url) from exc

    @contextmanager
    def read(self) -> Iterator[_Tx]:
        with self._lock:
            yield _Tx(self._conn)

    def add_eraser(self, table: str, column: str = "user_id") -> None:
        self._tables[table] = column

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Delete the user's rows in every registered table (one transaction), then checkpoint the WAL."""
        removed: dict[str, int] = {}
        with self.transaction() as tx:
            existing = {r[0] for r in tx.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
            for table, column in self._tables.items():
                if table in existing:
                    removed[table] = tx.execute(f"DELETE FROM {table} WHERE {column}=?", (user_id,))
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def close(self) -> None:
        with self._lock:
            self._conn.close()
