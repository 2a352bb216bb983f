"""The API key table (hashes only), in portable SQL over a :class:`~remem.storage.base.Database`.

Embedded: its own SQLite file (``<REMEM_HOME>/keys.sqlite3``), so ``remem keys …`` works while a server runs.
Postgres: a table of the shared database (migration 13), so every server worker sees a new or revoked key at
once. The key logic (format, hashing, constant-time comparison) is :mod:`remem.server.auth`'s.
"""

from __future__ import annotations

from typing import Any

from .base import Database, Row

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant TEXT,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


class SQLKeys:
    """Rows of ``api_keys``: ``(key_id, hash, role, tenant, label, created_at, revoked_at)``."""

    def __init__(self, database: Database, *, create: bool = False) -> None:
        self.database = database
        if create:
            with database.transaction() as tx:
                tx.execute(SCHEMA)

    def insert(self, row: tuple[Any, ...]) -> None:
        with self.database.transaction() as tx:
            tx.execute("INSERT INTO api_keys (key_id, hash, role, tenant, label, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       row)

    def active(self, key_id: str) -> Row | None:
        """``(hash, role, tenant)`` of an unrevoked key."""
        with self.database.read() as tx:
            return tx.fetchone("SELECT hash, role, tenant FROM api_keys WHERE key_id=? AND revoked_at IS NULL",
                               (key_id,))

    def rows(self) -> list[Row]:
        with self.database.read() as tx:
            return tx.fetchall("SELECT key_id, role, tenant, label, created_at, revoked_at FROM api_keys"
                               " ORDER BY created_at, key_id")

    def revoke(self, key_id: str, at: str) -> int:
        with self.database.transaction() as tx:
            return tx.execute("UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (at, key_id))

    def close(self) -> None:
        self.database.close()
