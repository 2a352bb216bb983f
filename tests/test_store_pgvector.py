"""What only the pgvector store does (a real PostgreSQL 16 + pgvector server): a memory change and its history
event are one transaction (a failure inside it or a ``kill -9`` leaves neither without the other), its per-user
BM25 formula, the full-text keyword signal, the dimension check, configuration errors, the HNSW option."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remem import ConfigurationError, EventType, Memory, StoreError
from remem.models import MemoryRecord
from remem.storage.postgres import PostgresDatabase
from remem.stores import MemoryFilter, StoreQuery
from remem.stores.bm25 import sparse_document, sparse_query
from remem.stores.edge import EdgeStore
from remem.stores.pgvector import PgvectorStore
from test_store_contract import ALICE, DIM, EMB, TEXTS, bigger_corpus, corpus, put


@pytest.fixture
def db(postgres_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_url, pool_size=2)
    yield database
    database.close()


def rows(db: PostgresDatabase, sql: str) -> list[tuple[object, ...]]:
    with db.read() as tx:
        return tx.fetchall(sql)


# -- one transaction -----------------------------------------------------------------------------------------
def test_a_write_and_its_history_event_are_one_transaction(tmp_path: Path, postgres_url: str) -> None:
    """A failure inside the store write — after the history insert, after the memory row — rolls back both."""
    with Memory(tmp_path / "home", embedder="fake", store="pgvector", database_url=postgres_url) as m:
        assert m.writer.atomic
        (kept,) = [e.memory_id or "" for e in m.add("Alice loves green tea", user_id="alice").added]
        db = m.storage.database
        with db.transaction() as tx:  # a database-side failure: the BM25 postings insert (the last statement)
            tx.execute("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full "
                       "(simulated)'; END $$ LANGUAGE plpgsql")
            tx.execute("CREATE TRIGGER refuse_terms BEFORE INSERT ON memory_terms EXECUTE FUNCTION refuse()")
            tx.execute("CREATE TRIGGER refuse_update BEFORE UPDATE ON memories EXECUTE FUNCTION refuse()")
        for call in (lambda: m.add("Alice plays football", user_id="alice"),
                     lambda: m.update(kept, "Alice prefers coffee", user_id="alice"),
                     lambda: m.delete(kept, user_id="alice")):
            with pytest.raises(StoreError, match="disk full"):
                call()
        assert [e.event for e in m.history(kept, user_id="alice")] == [EventType.ADD]
        assert rows(db, "SELECT count(*) FROM events") == [(1,)]
        assert rows(db, "SELECT count(*) FROM memories") == [(1,)]
        assert rows(db, "SELECT count(*) FROM intents") == [(0,)]  # no intents: nothing to recover
        assert m.get(kept, user_id="alice").text == "Alice loves green tea"
        with db.transaction() as tx:
            tx.execute("DROP TRIGGER refuse_terms ON memory_terms")
            tx.execute("DROP TRIGGER refuse_update ON memories")
        m.add("Alice plays football", user_id="alice")
        assert m.update(kept, "Alice prefers coffee", user_id="alice").version == 2
        assert rows(db, "SELECT count(*) FROM events") == [(3,)]
        assert rows(db, "SELECT count(*) FROM memories") == [(2,)]
        assert m.forget_user("alice").memories == 2
        assert rows(db, "SELECT count(*) FROM memories") == rows(db, "SELECT count(*) FROM memory_terms") == [(0,)]
        assert rows(db, "SELECT count(*) FROM events") == [(0,)]


WRITER = """
import sys
from remem import Memory
from remem.models import MemoryRecord

with Memory(sys.argv[1], embedder="fake", store="pgvector", database_url=sys.argv[2]) as m:
    for i in range(100000):
        batch = [MemoryRecord(user_id=f"u{i % 3}", text=f"memory {i} number {j}") for j in range(20)]
        m.add_records(batch, dedupe=False)
        if i % 2:
            m.update(batch[0].id, f"memory {i} changed", user_id=batch[0].user_id)
        print(i, flush=True)
"""


def test_kill_9_during_writes_leaves_no_event_without_its_record_and_no_record_without_its_event(
        tmp_path: Path, postgres_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "home"), postgres_url],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert child.stdout is not None
    for _ in range(5):  # several batches committed, the next one in flight
        assert child.stdout.readline(), "the writer died before writing"
    time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL
    with Memory(tmp_path / "home2", embedder="fake", store="pgvector", database_url=postgres_url) as m:
        db = m.storage.database
        added = {str(r[0]) for r in rows(db, "SELECT memory_id FROM events WHERE event = 'ADD'")}
        stored = {str(r[0]) for r in rows(db, "SELECT id FROM memories")}
        assert len(stored) >= 100 and added == stored
        versions = {str(r[0]): r[1] for r in rows(db, "SELECT id, (record::jsonb ->> 'version')::int FROM memories")}
        updates = {str(r[0]) for r in rows(db, "SELECT memory_id FROM events WHERE event = 'UPDATE'")}
        assert {i for i, v in versions.items() if v == 2} == updates
        assert rows(db, "SELECT count(*) FROM memory_terms WHERE memory_id NOT IN (SELECT id FROM memories)") \
            == [(0,)]
        assert m.doctor().ok


# -- keyword signals -----------------------------------------------------------------------------------------
def test_bm25_idf_is_the_users_own(db: PostgresDatabase, tmp_path: Path) -> None:
    """score = Σ idf · weight, idf = ln((N - n + 0.5) / (n + 0.5) + 1) over the user's memories; the Qdrant
    stores take N and n over the whole collection, so with a second user in the store their scores differ."""
    records = bigger_corpus()
    pg, edge = PgvectorStore(db, DIM), EdgeStore(tmp_path / "edge", DIM)
    for s in (pg, edge):
        put(s, records)
    alice = [r for r in records if r.user_id == "alice"]
    docs = {r.id: dict(zip(*sparse_document(r.text), strict=True)) for r in alice}

    def idf(term: int) -> float:
        n = sum(1 for d in docs.values() if term in d)
        return math.log((len(alice) - n + 0.5) / (n + 0.5) + 1)

    for text in ("tea and coffee", "football in berlin", "music"):
        terms, weights = sparse_query(text)
        expected = {mid: sum(idf(t) * d.get(t, 0.0) * w for t, w in zip(terms, weights, strict=True))
                    for mid, d in docs.items()}
        hits = pg.query(StoreQuery(filter=ALICE, limit=100, text=text))
        assert {h.record.id for h in hits} == {mid for mid, v in expected.items() if v > 0}
        for h in hits:
            assert h.score == pytest.approx(expected[h.record.id], abs=1e-4)
        assert [round(h.score, 5) for h in hits] == sorted((round(h.score, 5) for h in hits), reverse=True)
        collection = {h.record.id: h.score for h in edge.query(StoreQuery(filter=ALICE, limit=100, text=text))}
        assert any(abs(collection[h.record.id] - h.score) > 1e-3 for h in hits)
    edge.close()


def test_fts_keyword_signal(db: PostgresDatabase) -> None:
    store = PgvectorStore(db, DIM, keyword="fts")
    put(store, corpus())
    hits = store.query(StoreQuery(filter=ALICE, limit=10, text="Who plays football?"))
    assert [h.record.text for h in hits] == [TEXTS[1]] and hits[0].score > 0
    assert store.query(StoreQuery(filter=ALICE, limit=10, text="the of and")) == []
    tea = store.query(StoreQuery(filter=ALICE, limit=10, text="teas drinking"))  # stemmed: tea, drink
    assert {h.record.text for h in tea} == {TEXTS[0], TEXTS[5]}
    assert store.query(StoreQuery(filter=MemoryFilter(user_id="bob"), limit=10, text="peanuts")) == []


# -- schema and configuration ---------------------------------------------------------------------------------
def test_dimensions_are_fixed_and_checked_on_open(db: PostgresDatabase) -> None:
    PgvectorStore(db, DIM)
    with pytest.raises(StoreError, match=f"holds {DIM}-d vectors but the embedder makes 32-d"):
        PgvectorStore(db, 32)
    assert rows(db, "SELECT version FROM remem_schema WHERE component = 'pgvector'") == [(1,), (2,)]


def test_postings_of_another_bm25_analysis_are_rebuilt_on_open(db: PostgresDatabase) -> None:
    """A database whose BM25 postings an older analysis built (no signature, or another one) is re-indexed on
    open, as the edge store re-indexes its sparse vectors: keyword search finds the memory again."""
    from remem.stores.bm25 import LEGACY_SIGNATURE, signature

    store = PgvectorStore(db, DIM)
    put(store, corpus())
    with db.transaction() as tx:
        tx.execute("UPDATE memory_terms SET term = term + 1")  # postings of another analysis
        tx.execute("UPDATE pgvector_meta SET value = ? WHERE key = 'bm25'", (LEGACY_SIGNATURE,))
    football = StoreQuery(filter=ALICE, limit=10, text="Who plays football?")
    assert [h.record.text for h in store.query(football)] != [TEXTS[1]]
    reopened = PgvectorStore(db, DIM)
    assert [h.record.text for h in reopened.query(football)] == [TEXTS[1]]
    assert rows(db, "SELECT value FROM pgvector_meta WHERE key = 'bm25'") == [(signature(),)]
    with db.transaction() as tx:
        tx.execute("DELETE FROM pgvector_meta")  # a database from before the signature was kept
        tx.execute("UPDATE memory_terms SET term = term + 1")
    assert [h.record.text for h in PgvectorStore(db, DIM).query(football)] == [TEXTS[1]]


def test_pgvector_needs_a_postgres_database(tmp_path: Path, postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="REMEM_DATABASE_URL"):
        Memory(tmp_path / "a", embedder="fake", store="pgvector")
    with pytest.raises(ConfigurationError, match="unknown pgvector option"):
        Memory(tmp_path / "b", embedder="fake", store="pgvector:bm42", database_url=postgres_url)
    with Memory(tmp_path / "c", embedder="fake", store="pgvector:fts", database_url=postgres_url) as m:
        assert m.store.name == "pgvector" and m.store.keyword == "fts"  # type: ignore[attr-defined]


def test_hnsw_serves_only_queries_without_a_user_filter(db: PostgresDatabase) -> None:
    store = PgvectorStore(db, DIM, hnsw=True)
    records = put(store, bigger_corpus())
    query = EMB.embed([records[5].text])[0]
    anyone = MemoryFilter(user_id=None, all_users=True)
    assert store.query(StoreQuery(filter=anyone, limit=3, dense=query))[0].record.id == records[5].id
    with db.transaction() as tx:
        tx.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show what it may use
        plans = {}
        for name, flt in (("user", ALICE), ("admin", anyone)):
            sql, params = store._dense_sql(StoreQuery(filter=flt, limit=3, dense=query))
            with db.session() as conn:
                conn.adapters.register_dumper(type(params[0]), store._dumper)
            plans[name] = " ".join(str(r[0]) for r in tx.fetchall("EXPLAIN " + sql, [*params, 3]))
    assert "memories_embedding_hnsw" in plans["admin"]
    assert "memories_embedding_hnsw" not in plans["user"]


def test_records_round_trip_through_json(db: PostgresDatabase) -> None:
    store = PgvectorStore(db, DIM)
    r = MemoryRecord(user_id="alice", text="naïve café — ünïcode 🍵", metadata={"nested": {"a": [1, 2.5, None]}})
    put(store, [r])
    assert store.get([r.id], ALICE) == [r]
