"""The history log: schema migrations and pragmas (SQLite), and — on SQLite and on Postgres alike (the
``database_url`` fixture) — events with snapshots, transactions, erasure, and how a failed store write leaves no
history."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from remem import EmbeddingError, EventType, Memory, StoreError
from remem.embedders.fake import FakeEmbedder
from remem.models import HistoryEvent, MemoryRecord
from remem.storage.history import SQLHistory
from remem.storage.migrations import MIGRATIONS, register_migration
from remem.storage.sqlite.db import SQLiteDatabase
from remem.stores.edge import EdgeStore

SQLITE = MIGRATIONS["sqlite"]


def History(path: str | Path) -> SQLHistory:
    return SQLHistory(SQLiteDatabase(path))


@pytest.fixture
def log(database_url: str | None) -> Iterator[SQLHistory]:
    """An empty history on SQLite (in memory) or on a fresh Postgres database."""
    if database_url is None:
        history = History(":memory:")
    else:
        from remem.storage.postgres import PostgresDatabase

        history = SQLHistory(PostgresDatabase(database_url, pool_size=2))
    yield history
    history.close()


def test_fresh_database_pragmas_and_schema(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "h.sqlite3")
    conn = db.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == max(v for v, _ in SQLITE)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables >= {"events", "pending_jobs", "intents"}
    assert db.migrate() == max(v for v, _ in SQLITE)  # idempotent
    db.close()


def test_numbered_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path).close()
    version = max(v for v, _ in SQLITE) + 1000
    register_migration(version, "CREATE TABLE test_extra (x INTEGER); INSERT INTO test_extra VALUES (7)")
    register_migration(version, "DROP TABLE events")  # a second registration of a version is ignored
    try:
        db = SQLiteDatabase(path)
        assert db.connection.execute("PRAGMA user_version").fetchone()[0] == version
        assert db.connection.execute("SELECT x FROM test_extra").fetchall() == [(7,)]
        db.close()
        db = SQLiteDatabase(path)  # reopening does not re-run it (the INSERT would duplicate)
        assert db.connection.execute("SELECT COUNT(*) FROM test_extra").fetchone()[0] == 1
        db.close()
    finally:
        SQLITE[:] = [(v, sql) for v, sql in SQLITE if v != version]


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path).close()
    version = max(v for v, _ in SQLITE) + 2000
    register_migration(version, "CREATE TABLE half_done (x INTEGER); THIS IS NOT SQL")
    try:
        with pytest.raises(StoreError, match="history database"):
            History(path)
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='half_done'").fetchall() == []
        assert conn.execute("PRAGMA user_version").fetchone()[0] < version
        conn.close()
    finally:
        SQLITE[:] = [(v, sql) for v, sql in SQLITE if v != version]


def test_events_round_trip_with_snapshot(log: SQLHistory) -> None:
    record = MemoryRecord(user_id="u", text="hello", categories=["a"], metadata={"k": "v"})
    event = HistoryEvent(memory_id=record.id, user_id="u", event=EventType.ADD, new_text="hello", actor="test",
                         reason="because", snapshot=record)
    log.record([event])
    (stored,) = log.for_memory(record.id, "u")
    assert stored.id is not None and stored.model_copy(update={"id": None}) == event
    assert log.for_memory(record.id, "someone-else") == []
    assert log.users() == ["u"] and log.count() == 1 and log.count("u") == 1 and log.count("v") == 0


def test_transaction_rolls_back_on_error(log: SQLHistory) -> None:
    event = HistoryEvent(memory_id="m", user_id="u", event=EventType.ADD, new_text="x")
    with pytest.raises(RuntimeError), log.database.transaction() as tx:
        log.record([event], tx)
        raise RuntimeError("the store write failed")
    assert log.count() == 0


def test_forget_user_erases_every_registered_table(log: SQLHistory) -> None:
    db = log.database
    with db.transaction() as tx:
        tx.execute("CREATE TABLE pending (user_id TEXT, body TEXT)")
        tx.executemany("INSERT INTO pending VALUES (?, ?)", [("u", "a"), ("u", "b"), ("v", "c")])
    db.add_eraser("pending")
    log.record([HistoryEvent(memory_id="m", user_id="u", event=EventType.ADD, new_text="x")])
    assert log.forget_user("u") == {"history_events": 1, "pending": 2, "pending_jobs": 0, "graph_relations": 0,
                                    "graph_entities": 0, "graph_events": 0, "lm_usage": 0}  # always erased
    with db.read() as tx:
        assert tx.fetchall("SELECT user_id FROM pending") == [("v",)]


# -- the history transaction wraps the store write -----------------------------------------------------------
class BrokenStore:
    """A real edge store whose writes can be switched to fail (a full disk, a lost server)."""

    name = "edge"

    def __init__(self, inner: EdgeStore) -> None:
        self.inner, self.broken = inner, False

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if self.broken:
            raise StoreError("write failed (simulated)")
        self.inner.upsert(records, vectors)

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        if self.broken:
            raise StoreError("write failed (simulated)")
        self.inner.set_payload(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BrokenEmbedder(FakeEmbedder):
    broken = False

    def embed(self, texts: Sequence[str]) -> Any:
        if self.broken:
            raise EmbeddingError("model crashed (simulated)")
        return super().embed(texts)


def test_failed_store_write_records_no_history(tmp_path: Path, database_url: str | None) -> None:
    store = BrokenStore(EdgeStore(tmp_path / "home" / "edge", 64))
    with Memory(tmp_path / "home", embedder="fake", store=store,  # type: ignore[arg-type]
                database_url=database_url) as m:
        (mid,) = [e.memory_id or "" for e in m.add("original text", user_id="u").added]
        deleted = m.add("deleted text", user_id="u").added[0].memory_id or ""
        m.delete(deleted, user_id="u")
        store.broken = True
        for call in (lambda: m.add("new text", user_id="u"),
                     lambda: m.update(mid, "changed text", user_id="u"),
                     lambda: m.update(mid, user_id="u", categories=["x"]),
                     lambda: m.delete(mid, user_id="u"),
                     lambda: m.restore(deleted, user_id="u")):
            with pytest.raises(StoreError):
                call()
        assert m.log.count() == 3 and m.log.intents() == []
        assert m.get(mid, user_id="u").text == "original text" and m.get(mid, user_id="u").version == 1
        assert m.list(user_id="u").total == 1
        store.broken = False
        assert m.update(mid, "changed text", user_id="u").version == 2


def test_failed_embedding_writes_nothing(tmp_path: Path, database_url: str | None) -> None:
    emb = BrokenEmbedder()
    with Memory(tmp_path / "home", embedder=emb, database_url=database_url,
                store="pgvector" if database_url else None) as m:
        (mid,) = [e.memory_id or "" for e in m.add("original text", user_id="u").added]
        emb.broken = True
        with pytest.raises(EmbeddingError):
            m.add("new text", user_id="u")
        with pytest.raises(EmbeddingError):
            m.update(mid, "changed", user_id="u")
        assert m.log.count() == 1 and m.list(user_id="u").total == 1
        assert m.get(mid, user_id="u").text == "original text"


def test_history_lists_every_change_in_order(backend_memory: Memory) -> None:
    m = backend_memory
    (mid,) = [e.memory_id or "" for e in m.add("v1", user_id="u", categories=["a"]).added]
    m.update(mid, "v2", user_id="u", actor="agent", reason="new info")
    m.delete(mid, user_id="u", actor="user")
    m.restore(mid, user_id="u")
    m.update(mid, "v3", user_id="u")
    events = m.history(mid, user_id="u")
    assert [(e.event, e.old_text, e.new_text) for e in events] == [
        (EventType.ADD, None, "v1"),
        (EventType.UPDATE, "v1", "v2"),
        (EventType.DELETE, "v2", None),
        (EventType.RESTORE, None, "v2"),
        (EventType.UPDATE, "v2", "v3"),
    ]
    assert [e.actor for e in events][:3] == ["api", "agent", "user"] and events[1].reason == "new info"
    assert [e.snapshot.version for e in events if e.snapshot] == [1, 2, 2, 2, 3]
    assert events[2].snapshot is not None and events[2].snapshot.is_deleted
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(events))
    assert events[-1].snapshot == m.get(mid, user_id="u")
