"""The Postgres :class:`~remem.storage.base.Database` and :class:`~remem.storage.base.Locks` (``psycopg`` 3).

- A ``psycopg_pool.ConnectionPool`` per process (``REMEM_DATABASE_POOL`` connections, autocommit; explicit
  transactions). A thread inside :meth:`PostgresDatabase.transaction` or holding a user lock has its connection
  bound to it, so nested calls (the pgvector store inside the writer's transaction, history reads inside a lock)
  use the same connection and transaction.
- Numbered migrations (:mod:`remem.storage.migrations`) tracked in ``remem_schema``, each applied in a
  transaction under a transaction-level advisory lock, so N workers starting together migrate once.
- :class:`PostgresLocks`: per-user session-level advisory locks (``pg_advisory_lock(scope, hashtext(user))``)
  behind the in-process locks, so one user's writes are serialised across every process on the database.
- Every driver error surfaces as :class:`~remem.errors.StoreError` (a typed error; REST answers 503).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigurationError, StoreError
from .base import Dialect, Row
from .locks import LocalLocks
from .migrations import MIGRATIONS, USER_TABLES, statements

#: Advisory-lock class ids (first key of the two-key form): one space per purpose.
LOCK_SCOPES = {"migrate": 72_001, "write": 72_002, "maintain": 72_003}


def _sql(sql: str) -> str:
    """``?`` placeholders (the portable SQL of remem) → psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # postgresql://user:secret@host
    return re.sub(r"(?i)(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url)  # ?password=… and key=value form


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self._conn.execute(_sql(sql), tuple(params))
        return int(cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(_sql(sql), [tuple(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._conn.execute(_sql(sql), tuple(params)).fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self._conn.execute(_sql(sql), tuple(params)).fetchone()
        return tuple(row) if row is not None else None


class _Binding(threading.local):
    conn: Any = None
    depth: int = 0  # sessions bound (locks, transactions)
    tx_depth: int = 0


class PostgresDatabase:
    """History, queue, keys (and the pgvector store) in one Postgres database."""

    dialect: Dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 8, migrate: bool = True, timeout: float = 30.0) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ConfigurationError("REMEM_DATABASE_URL needs the postgres extra: pip install 'remem[postgres]'") \
                from exc
        self._psycopg = psycopg
        self.url = redact(url)
        self._tables: dict[str, str] = dict(USER_TABLES)
        self._bound = _Binding()
        try:
            # check: a pooled connection is tested (a cheap round trip) before it is handed out, so after a
            # database restart no request fails on a connection the server already closed.
            self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                       timeout=timeout, open=False, name="remem",
                                       check=ConnectionPool.check_connection)
            self.pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            raise StoreError(f"cannot connect to the database {self.url}: {exc}", url=self.url) from exc
        if migrate:
            self.migrate()

    # -- connections -----------------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Any]:
        """A connection bound to this thread until the block ends (nested calls share it)."""
        b = self._bound
        if b.conn is not None:
            b.depth += 1
            try:
                yield b.conn
            finally:
                b.depth -= 1
            return
        with self._errors(), self.pool.connection() as conn:
            b.conn, b.depth = conn, 1
            try:
                yield conn
            finally:
                b.conn, b.depth = None, 0

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            raise StoreError(f"database error ({type(exc).__name__}): {str(exc).strip()[:300]}",
                             url=self.url) from exc
        except TimeoutError as exc:  # psycopg_pool.PoolTimeout
            raise StoreError(f"no database connection free within the pool timeout ({exc})", url=self.url) from exc

    @contextmanager
    def transaction(self) -> Iterator[_PgTx]:
        with self.session() as conn, self._errors():
            b = self._bound
            if b.tx_depth:
                b.tx_depth += 1
                try:
                    yield _PgTx(conn)
                finally:
                    b.tx_depth -= 1
                return
            b.tx_depth = 1
            try:
                with conn.transaction():
                    yield _PgTx(conn)
            finally:
                b.tx_depth = 0

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        with self.session() as conn, self._errors():
            yield _PgTx(conn)

    # -- schema ----------------------------------------------------------------------------------------------
    def migrate(self, component: str = "remem", steps: Sequence[tuple[int, str]] | None = None) -> int:
        """Apply ``steps`` (default: the numbered migrations) not yet recorded for ``component``."""
        steps = MIGRATIONS["postgres"] if steps is None else steps
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(?, 0)", (LOCK_SCOPES["migrate"],))
            tx.execute("CREATE TABLE IF NOT EXISTS remem_schema (component TEXT NOT NULL, version INTEGER NOT NULL,"
                       " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (component, version))")
        current = 0
        for version, sql in steps:
            with self.transaction() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(?, 0)", (LOCK_SCOPES["migrate"],))
                done = tx.fetchone("SELECT 1 FROM remem_schema WHERE component=? AND version=?", (component, version))
                if done is None:
                    for statement in statements(sql):
                        tx.execute(statement)
                    tx.execute("INSERT INTO remem_schema (component, version) VALUES (?, ?)", (component, version))
            current = version
        return current

    def schema_version(self, component: str = "remem") -> int:
        with self.read() as tx:
            row = tx.fetchone("SELECT MAX(version) FROM remem_schema WHERE component=?", (component,))
        return int(row[0]) if row and row[0] is not None else 0

    # -- erasure ---------------------------------------------------------------------------------------------
    def add_eraser(self, table: str, column: str = "user_id") -> None:
        self._tables[table] = column

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Delete the user's rows in every registered table, in one transaction. Postgres keeps the old row
        versions until VACUUM and in its WAL and backups: see the README's erasure section."""
        removed: dict[str, int] = {}
        with self.transaction() as tx:
            existing = {r[0] for r in tx.fetchall(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
            for table, column in self._tables.items():
                if table in existing:
                    removed[table] = tx.execute(f"DELETE FROM {table} WHERE {column}=?", (user_id,))
        return removed

    def close(self) -> None:
        self.pool.close()


class PostgresLocks:
    """Per-user locks across processes: the in-process lock first, then a session-level advisory lock on a
    connection bound to the thread for as long as the lock is held."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        self._local = LocalLocks()

    def held(self, user_id: str, scope: str = "write") -> bool:
        return self._local.held(user_id, scope)

    @contextmanager
    def hold(self, user_id: str, scope: str = "write") -> Iterator[None]:
        if self._local.held(user_id, scope):
            with self._local.hold(user_id, scope):
                yield
            return
        key = LOCK_SCOPES[scope]
        with self._local.hold(user_id, scope), self.database.session() as conn:
            with self.database._errors():
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (key, user_id))
            try:
                yield
            finally:
                with self.database._errors():
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (key, user_id))
