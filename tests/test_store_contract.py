"""The store contract, run against every backend: the embedded ``edge`` store, ``qdrant`` (client, :memory:),
``pgvector`` (a real PostgreSQL 16 + pgvector server, a fresh database per test) and ``markdown`` (files,
remem.markdown).

Every test takes the ``store`` fixture, parametrized over the four; the congruence tests build stores side by
side and check that identical inputs give identical ids, order and (within 1e-4) scores.
The Markdown store beside edge (what a file store does differently) is in ``tests/test_markdown_congruence.py``.

Where pgvector differs on purpose, the suite says so: its BM25 takes the IDF statistics from the *user's*
memories, the Qdrant stores from the whole collection, so BM25 scores agree only when the store holds one user
(``test_congruence_pgvector_*``; the exact per-user formula is checked in ``tests/test_store_pgvector.py``).
Dense scores, filters, scroll order and counts are identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from remem import Memory
from remem.embedders.fake import FakeEmbedder
from remem.errors import StoreError
from remem.markdown.store import MarkdownStore
from remem.models import MemoryRecord
from remem.stores import MemoryFilter, ScoredRecord, StoreQuery, VectorStore
from remem.stores.edge import EdgeStore
from remem.stores.qdrant import QdrantStore

DIM = 64
EMB = FakeEmbedder(DIM)
T0 = datetime(2024, 1, 1, tzinfo=UTC)

TEXTS = [
    "Alice loves green tea in the morning",
    "Alice plays football on Sundays",
    "Alice moved to Berlin last spring",
    "Alice is allergic to peanuts",
    "Alice's sister is called Maria",
    "Alice drinks coffee only at work",
    "Alice prefers window seats on flights",
    "Alice adopted a cat named Tofu",
]


def make_store(kind: str, tmp_path: Path, url: str | None = None) -> VectorStore:
    if kind == "edge":
        return EdgeStore(tmp_path / f"edge-{kind}", DIM)
    if kind == "markdown":
        return MarkdownStore(tmp_path / "markdown", DIM)
    if kind == "pgvector":
        from remem.storage.postgres import PostgresDatabase
        from remem.stores.pgvector import PgvectorStore

        assert url is not None
        return PgvectorStore(PostgresDatabase(url, pool_size=2), DIM)
    return QdrantStore(":memory:", DIM)


def close_store(store: VectorStore) -> None:
    store.close()
    database = getattr(store, "database", None)
    if database is not None:
        database.close()


@pytest.fixture(params=["edge", "qdrant", "pgvector", "markdown"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    url = request.getfixturevalue("postgres_url") if request.param == "pgvector" else None
    s = make_store(request.param, tmp_path, url)
    yield s
    close_store(s)


def rec(text: str, user: str = "alice", day: int = 0, **kw: object) -> MemoryRecord:
    return MemoryRecord(user_id=user, text=text, created_at=T0 + timedelta(days=day), **kw)  # type: ignore[arg-type]


def put(store: VectorStore, records: list[MemoryRecord]) -> list[MemoryRecord]:
    store.upsert(records, EMB.embed([r.text for r in records]))
    return records


def corpus() -> list[MemoryRecord]:
    alice = [
        rec(t, day=i, categories=["food"] if i in (0, 3, 5) else ["life"], kind="fact" if i % 2 else "episode",
            session_id="s1" if i < 4 else "s2")
        for i, t in enumerate(TEXTS)
    ]
    bob = [rec("Bob loves green tea too", user="bob", day=1), rec("Bob plays football", user="bob", day=2)]
    return alice + bob


ALICE = MemoryFilter(user_id="alice")


def ids(records: list[MemoryRecord]) -> list[str]:
    return [r.id for r in records]


# -- basic reads and writes ---------------------------------------------------------------------------------
def test_upsert_get_roundtrips_every_field(store: VectorStore) -> None:
    r = rec("Alice loves tea", categories=["food"], metadata={"k": [1, 2]}, source_ids=["m1"], speaker="Alice",
            observed_at=T0 + timedelta(hours=5), session_id="s9", seq=3, role="user")
    put(store, [r])
    (got,) = store.get([r.id], ALICE)
    assert got == r


def test_get_is_scoped_to_user(store: VectorStore) -> None:
    records = put(store, corpus())
    bob_id = records[-1].id
    assert store.get([bob_id], ALICE) == []
    assert ids(store.get([records[0].id, bob_id], ALICE)) == [records[0].id]
    assert store.get([], ALICE) == []


def test_get_keeps_requested_order(store: VectorStore) -> None:
    records = put(store, corpus())
    wanted = [records[3].id, records[0].id, records[2].id]
    assert ids(store.get(wanted, ALICE)) == wanted


def test_filter_without_user_requires_admin_flag() -> None:
    with pytest.raises(StoreError):
        MemoryFilter(user_id=None)
    assert MemoryFilter(user_id=None, all_users=True).all_users


def test_count(store: VectorStore) -> None:
    put(store, corpus())
    assert store.count(ALICE) == len(TEXTS)
    assert store.count(MemoryFilter(user_id="bob")) == 2
    assert store.count(MemoryFilter(user_id="nobody")) == 0
    assert store.count(MemoryFilter(user_id=None, all_users=True)) == len(TEXTS) + 2


# -- queries -----------------------------------------------------------------------------------------------
def test_query_dense_ranks_by_cosine_within_user(store: VectorStore) -> None:
    put(store, corpus())
    query = EMB.embed(["green tea"])[0]
    hits = store.query(StoreQuery(filter=ALICE, limit=5, dense=query))
    assert len(hits) == 5
    assert hits[0].record.text == TEXTS[0]
    assert all(h.record.user_id == "alice" for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    vectors = EMB.embed([h.record.text for h in hits])
    np.testing.assert_allclose(scores, vectors @ query, atol=1e-4)


def test_query_bm25_matches_words_within_user(store: VectorStore) -> None:
    put(store, corpus())
    hits = store.query(StoreQuery(filter=ALICE, limit=10, text="football"))
    assert [h.record.text for h in hits] == [TEXTS[1]]
    assert hits[0].score > 0
    assert store.query(StoreQuery(filter=ALICE, limit=10, text="the of and")) == []  # stopwords only


def test_query_needs_a_signal(store: VectorStore) -> None:
    with pytest.raises(StoreError):
        store.query(StoreQuery(filter=ALICE, limit=3))


def test_query_respects_limit(store: VectorStore) -> None:
    put(store, corpus())
    assert len(store.query(StoreQuery(filter=ALICE, limit=2, dense=EMB.embed(["x"])[0]))) == 2


# -- filters -----------------------------------------------------------------------------------------------
def all_alice(store: VectorStore, **kw: object) -> set[str]:
    flt = MemoryFilter(user_id="alice", **kw)  # type: ignore[arg-type]
    via_scroll = {r.text for r in store.scroll(flt, offset=0, limit=100)}
    via_query = {h.record.text for h in store.query(StoreQuery(filter=flt, limit=100, dense=EMB.embed(["a"])[0]))}
    assert via_scroll == via_query
    assert store.count(flt) == len(via_scroll)
    return via_scroll


def test_filter_categories(store: VectorStore) -> None:
    put(store, corpus())
    assert all_alice(store, categories=["food"]) == {TEXTS[0], TEXTS[3], TEXTS[5]}
    assert all_alice(store, categories=["food", "life"]) == set(TEXTS)
    assert all_alice(store, categories=["nope"]) == set()


def test_filter_kinds(store: VectorStore) -> None:
    put(store, corpus())
    assert all_alice(store, kinds=["fact"]) == {TEXTS[i] for i in (1, 3, 5, 7)}
    assert all_alice(store, kinds=["episode", "fact"]) == set(TEXTS)


def test_filter_time_range_is_inclusive(store: VectorStore) -> None:
    put(store, corpus())
    assert all_alice(store, since=T0 + timedelta(days=2), until=T0 + timedelta(days=4)) == set(TEXTS[2:5])
    assert all_alice(store, since=T0 + timedelta(days=6)) == set(TEXTS[6:])
    assert all_alice(store, until=T0) == {TEXTS[0]}


def test_filter_time_uses_observed_at_first(store: VectorStore) -> None:
    r = rec("observed long ago", day=10, observed_at=T0 - timedelta(days=365))
    put(store, [r])
    assert all_alice(store, until=T0) == {"observed long ago"}
    assert all_alice(store, since=T0 + timedelta(days=5)) == set()


def test_filter_session_and_hash(store: VectorStore) -> None:
    records = put(store, corpus())
    assert all_alice(store, session_id="s2") == set(TEXTS[4:])
    assert all_alice(store, hash=records[2].hash) == {TEXTS[2]}


def test_filter_state_live_deleted_both(store: VectorStore) -> None:
    records = put(store, corpus())
    gone = records[1].model_copy(update={"deleted_at": T0 + timedelta(days=30)})
    store.set_payload([gone])
    assert TEXTS[1] not in all_alice(store)
    assert all_alice(store, deleted=True) == {TEXTS[1]}
    assert all_alice(store, deleted=None) == set(TEXTS)
    assert store.get([gone.id], ALICE) == []
    assert store.get([gone.id], MemoryFilter(user_id="alice", deleted=True)) == [gone]


def test_filter_seq_range(store: VectorStore) -> None:
    put(store, [rec(f"turn {i}", session_id="s1", seq=i) for i in range(6)] + [rec("no seq")])
    assert all_alice(store, session_id="s1", seq_min=2, seq_max=4) == {"turn 2", "turn 3", "turn 4"}
    assert all_alice(store, seq_min=5) == {"turn 5"}
    assert all_alice(store, seq_max=0) == {"turn 0"}


def test_filter_ids(store: VectorStore) -> None:
    records = put(store, corpus())
    assert all_alice(store, ids=[records[0].id, records[4].id, records[-1].id]) == {TEXTS[0], TEXTS[4]}


# -- scroll ------------------------------------------------------------------------------------------------
def test_scroll_orders_by_time_and_pages(store: VectorStore) -> None:
    put(store, corpus())
    desc = [r.text for r in store.scroll(ALICE, offset=0, limit=100)]
    assert desc == TEXTS[::-1]
    asc = [r.text for r in store.scroll(ALICE, offset=0, limit=100, order="asc")]
    assert asc == TEXTS
    pages = [r.text for off in range(0, 8, 3) for r in store.scroll(ALICE, offset=off, limit=3, order="asc")]
    assert pages == TEXTS
    assert store.scroll(ALICE, offset=8, limit=3) == []
    assert store.scroll(ALICE, offset=0, limit=0) == []


def test_scroll_paging_with_tied_timestamps_is_stable(store: VectorStore) -> None:
    same = [rec(f"tied memory number {i}") for i in range(12)]
    put(store, same)
    full = ids(store.scroll(ALICE, offset=0, limit=100, order="asc"))
    assert sorted(full) == sorted(ids(same))
    paged = [i for off in range(0, 12, 5) for i in ids(store.scroll(ALICE, offset=off, limit=5, order="asc"))]
    assert paged == full


# -- set_payload / delete ----------------------------------------------------------------------------------
def test_set_payload_keeps_vector(store: VectorStore) -> None:
    records = put(store, corpus())
    changed = records[0].model_copy(update={"categories": ["drinks"], "metadata": {"x": 1}})
    store.set_payload([changed])
    assert store.get([changed.id], ALICE) == [changed]
    hits = store.query(StoreQuery(filter=ALICE, limit=1, dense=EMB.embed([TEXTS[0]])[0]))
    assert hits[0].record.id == changed.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all_alice(store, categories=["drinks"]) == {TEXTS[0]}


def test_upsert_replaces_by_id(store: VectorStore) -> None:
    records = put(store, corpus())
    new = records[0].model_copy(update={"text": "Alice now prefers rooibos", "version": 2})
    put(store, [new])
    assert store.count(ALICE) == len(TEXTS)
    assert store.get([new.id], ALICE)[0].text == "Alice now prefers rooibos"
    hits = store.query(StoreQuery(filter=ALICE, limit=1, text="rooibos"))
    assert [h.record.id for h in hits] == [new.id]


def test_delete_is_scoped_to_user(store: VectorStore) -> None:
    records = put(store, corpus())
    store.delete([records[0].id], MemoryFilter(user_id="bob"))  # not bob's: nothing happens
    assert store.count(ALICE) == len(TEXTS)
    deleted = records[1].model_copy(update={"deleted_at": T0})
    store.set_payload([deleted])
    store.delete([records[0].id, records[1].id], ALICE)  # removes live and tombstoned points alike
    assert store.count(MemoryFilter(user_id="alice", deleted=None)) == len(TEXTS) - 2
    store.delete([], ALICE)


def test_delete_user_counts_and_spares_others(store: VectorStore) -> None:
    records = put(store, corpus())
    store.set_payload([records[2].model_copy(update={"deleted_at": T0})])
    assert store.delete_user("alice") == len(TEXTS)
    assert store.count(MemoryFilter(user_id="alice", deleted=None)) == 0
    assert store.count(MemoryFilter(user_id="bob")) == 2
    assert store.delete_user("alice") == 0


# -- congruence --------------------------------------------------------------------------------------------
@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[VectorStore, VectorStore]]:
    edge, qdrant = make_store("edge", tmp_path), make_store("qdrant", tmp_path)
    yield edge, qdrant
    edge.close()
    qdrant.close()


def bigger_corpus() -> list[MemoryRecord]:
    words = ["tea", "coffee", "football", "berlin", "cat", "flight", "sister", "peanuts", "morning", "work", "music", "book", "garden", "rain"]
    rng = np.random.default_rng(7)
    out = []
    for i in range(120):
        chosen = rng.choice(words, size=int(rng.integers(2, 6)), replace=False)
        out.append(rec(f"memory {i} about " + " and ".join(chosen), user="alice" if i % 3 else "bob", day=i % 17,
                       categories=["even"] if i % 2 == 0 else ["odd"]))
    return out


QUERIES = ["tea and coffee", "football in berlin", "a cat and a garden", "rain in the morning", "music"]


def test_congruence_dense_and_bm25(both: tuple[VectorStore, VectorStore]) -> None:
    records = bigger_corpus()
    for s in both:
        put(s, records)
    for flt in (ALICE, MemoryFilter(user_id="bob", categories=["even"]),
                MemoryFilter(user_id="alice", since=T0 + timedelta(days=5), until=T0 + timedelta(days=9))):
        for text in QUERIES:
            for q in (StoreQuery(filter=flt, limit=15, dense=EMB.embed([text])[0]),
                      StoreQuery(filter=flt, limit=15, text=text)):
                edge_hits, qdrant_hits = (s.query(q) for s in both)
                assert edge_hits, (text, flt)
                np.testing.assert_allclose([h.score for h in edge_hits], [h.score for h in qdrant_hits], atol=1e-4)
                # Same ids in the same order: ties (common in BM25) are ordered by id, and the tie class at
                # the cut is resolved the same way on both backends.
                assert [h.record.id for h in edge_hits] == [h.record.id for h in qdrant_hits], (text, flt)


def test_congruence_scroll_and_count(both: tuple[VectorStore, VectorStore]) -> None:
    records = bigger_corpus()
    for s in both:
        put(s, records)
    flt = MemoryFilter(user_id="alice", categories=["odd"])
    edge, qdrant = both
    assert edge.count(flt) == qdrant.count(flt)
    e = [(r.created_at, r.id) for r in edge.scroll(flt, offset=0, limit=200, order="asc")]
    q = [(r.created_at, r.id) for r in qdrant.scroll(flt, offset=0, limit=200, order="asc")]
    assert sorted(e) == sorted(q)
    assert [t for t, _ in e] == [t for t, _ in q]


def test_congruence_memory_search(tmp_path: Path) -> None:
    """The same memories (same ids, via export/import) give identical Memory.search results on both backends."""
    lines = [r.text for r in bigger_corpus() if r.user_id == "alice"]
    dump = tmp_path / "dump.jsonl"
    with Memory(tmp_path / "edge", embedder="fake") as edge:
        edge.add(lines, user_id="alice", categories=["misc"])
        edge.add(["bob's tea and coffee", "bob's garden"], user_id="bob")
        edge.export(dump)
        with Memory(tmp_path / "qdrant", embedder="fake", store="qdrant::memory:") as qdrant:
            assert qdrant.import_(dump)["memories"] == len(lines) + 2
            for q in QUERIES:
                for mode in ("hybrid", "dense", "bm25"):
                    for kw in ({}, {"categories": ["misc"], "limit": 3}, {"threshold": 0.2}):
                        e, d = (
                            [(h.record.id, round(h.score, 4), h.ranks) for h in
                             m.search(q, user_id="alice", mode=mode, **kw)]  # type: ignore[arg-type]
                            for m in (edge, qdrant)
                        )
                        assert e == d, (q, mode, kw)
                        assert e or kw


def test_scroll_paging_with_microsecond_neighbours(store: VectorStore) -> None:
    base = T0 + timedelta(seconds=1)
    records = [MemoryRecord(user_id="alice", text=f"close in time {i}", created_at=base + timedelta(microseconds=i % 3))
               for i in range(9)]
    put(store, records)
    full = store.scroll(ALICE, offset=0, limit=100, order="asc")
    assert [(r.created_at, r.id) for r in full] == sorted((r.created_at, r.id) for r in records)
    for size in (1, 2, 4):
        paged = [r.id for off in range(0, 9, size) for r in store.scroll(ALICE, offset=off, limit=size, order="asc")]
        assert paged == [r.id for r in full]
        paged = [r.id for off in range(0, 9, size) for r in store.scroll(ALICE, offset=off, limit=size)]
        assert paged == [r.id for r in full][::-1]


def test_top_k_widens_until_the_tie_at_the_cut_is_complete() -> None:
    from remem.stores.base import top_k

    records = [(rec(f"r{i}").id, 1.0 if i < 40 else 0.5) for i in range(60)]
    shuffled = records[::-1][20:] + records[::-1][:20]  # an engine's arbitrary order within ties
    shuffled.sort(key=lambda s: -s[1])
    asked: list[int] = []

    def fetch(n: int) -> list[tuple[str, float]]:
        asked.append(n)
        return shuffled[:n]

    best = top_k(fetch, 5)
    assert [i for i, _ in best] == sorted(i for i, _ in records[:40])[:5]
    assert asked == [13, 26, 52]  # widened until the 1.0 tie class (40 results) was complete
    assert top_k(fetch, 0) == []


# -- congruence with pgvector ------------------------------------------------------------------------------------
@pytest.fixture
def edge_and_pgvector(tmp_path: Path, postgres_url: str) -> Iterator[tuple[VectorStore, VectorStore]]:
    edge, pg = make_store("edge", tmp_path), make_store("pgvector", tmp_path, postgres_url)
    yield edge, pg
    close_store(edge)
    close_store(pg)


FILTERS = (ALICE, MemoryFilter(user_id="bob", categories=["even"]),
           MemoryFilter(user_id="alice", since=T0 + timedelta(days=5), until=T0 + timedelta(days=9)))


def assert_same_hits(a: list[ScoredRecord], b: list[ScoredRecord], context: object) -> None:
    assert a, context
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)
    assert [h.record for h in a] == [h.record for h in b], context


def test_congruence_pgvector_dense_scroll_and_count(edge_and_pgvector: tuple[VectorStore, VectorStore]) -> None:
    """Dense scores, ids and order, filters, counts and scroll pages are identical to the edge store's."""
    records = bigger_corpus()
    for s in edge_and_pgvector:
        put(s, records)
    edge, pg = edge_and_pgvector
    for flt in FILTERS:
        for text in QUERIES:
            q = StoreQuery(filter=flt, limit=15, dense=EMB.embed([text])[0])
            assert_same_hits(edge.query(q), pg.query(q), (text, flt))
        assert edge.count(flt) == pg.count(flt)
        for order in ("asc", "desc"):
            pages = [[r.id for r in s.scroll(flt, offset=7, limit=11, order=order)] for s in (edge, pg)]  # type: ignore[arg-type]
            assert pages[0] == pages[1]


def test_congruence_pgvector_bm25_with_one_user(edge_and_pgvector: tuple[VectorStore, VectorStore]) -> None:
    """pgvector's BM25 IDF is per user; with one user in the store it is Qdrant's collection IDF: same scores."""
    records = [r for r in bigger_corpus() if r.user_id == "alice"]
    for s in edge_and_pgvector:
        put(s, records)
    edge, pg = edge_and_pgvector
    for flt in (ALICE, MemoryFilter(user_id="alice", categories=["even"]),
                MemoryFilter(user_id="alice", since=T0 + timedelta(days=5), until=T0 + timedelta(days=9))):
        for text in QUERIES:
            q = StoreQuery(filter=flt, limit=15, text=text)
            assert_same_hits(edge.query(q), pg.query(q), (text, flt))


def test_congruence_memory_search_pgvector(tmp_path: Path, postgres_url: str) -> None:
    """Memory.search on pgvector equals edge's in every mode with one user; with a second user in the store,
    dense search is still identical and BM25 differs only by its per-user IDF (stated, not skipped)."""
    lines = [r.text for r in bigger_corpus() if r.user_id == "alice"]
    dump = tmp_path / "dump.jsonl"
    with Memory(tmp_path / "edge", embedder="fake") as edge:
        edge.add(lines, user_id="alice", categories=["misc"])
        edge.export(dump)
        with Memory(tmp_path / "pg", embedder="fake", store="pgvector", database_url=postgres_url) as pg:
            assert pg.import_(dump)["memories"] == len(lines)

            def results(m: Memory, q: str, mode: str, **kw: object) -> list[tuple[str, float, dict[str, int]]]:
                return [(h.record.id, round(h.score, 4), h.ranks) for h in
                        m.search(q, user_id="alice", mode=mode, **kw)]  # type: ignore[arg-type]

            for q in QUERIES:
                for mode in ("hybrid", "dense", "bm25"):
                    for kw in ({}, {"categories": ["misc"], "limit": 3}, {"threshold": 0.2}):
                        assert results(edge, q, mode, **kw) == results(pg, q, mode, **kw), (q, mode, kw)
            for m in (edge, pg):
                m.add(["bob's tea and coffee", "bob's garden", "bob's music"], user_id="bob")
            for q in QUERIES:
                assert results(edge, q, "dense") == results(pg, q, "dense")
