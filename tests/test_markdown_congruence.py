"""The Markdown store beside edge (remem.markdown).

Every test of ``tests/test_store_contract.py`` also runs on ``markdown`` (its ``store`` fixture). What a file store
does differently is stated here rather than skipped:

- dense: exact cosine over the user's vectors, as edge's exact per-user scan: same ids, order and scores (1e-4);
- BM25: ``bm25s`` over the user's own memories, so IDF and document lengths are the user's (Qdrant's BM25 spans
  the whole collection) and scores are not comparable; the terms are the same as edge's and qdrant's
  (:func:`remem.stores.bm25.analyze` — CJK bigrams, Thai/Lao/Khmer/Myanmar words, accent folding — then Qdrant's
  English stop words and stemmer), so the same memories match a query in every language, in a close but not
  identical order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from remem.markdown.index import terms
from remem.stores import MemoryFilter, StoreQuery, VectorStore
from remem.stores.bm25 import sparse_document, sparse_query
from test_store_contract import ALICE, EMB, QUERIES, T0, bigger_corpus, close_store, make_store, put, rec


@pytest.fixture
def edge_and_markdown(tmp_path: Path) -> Iterator[tuple[VectorStore, VectorStore]]:
    edge, markdown = make_store("edge", tmp_path), make_store("markdown", tmp_path)
    yield edge, markdown
    close_store(edge)
    close_store(markdown)


def test_markdown_dense_is_congruent_with_edge(edge_and_markdown: tuple[VectorStore, VectorStore]) -> None:
    records = bigger_corpus()
    for s in edge_and_markdown:
        put(s, records)
    for flt in (ALICE, MemoryFilter(user_id="bob", categories=["even"]),
                MemoryFilter(user_id="alice", since=T0 + timedelta(days=5), until=T0 + timedelta(days=9))):
        for text in QUERIES:
            q = StoreQuery(filter=flt, limit=15, dense=EMB.embed([text])[0])
            edge_hits, md_hits = (s.query(q) for s in edge_and_markdown)
            assert [h.record.id for h in edge_hits] == [h.record.id for h in md_hits], (text, flt)
            np.testing.assert_allclose([h.score for h in edge_hits], [h.score for h in md_hits], atol=1e-4)


def test_markdown_bm25_matches_the_same_memories_as_edge(edge_and_markdown: tuple[VectorStore, VectorStore]) -> None:
    records = bigger_corpus()
    for s in edge_and_markdown:
        put(s, records)
    for flt in (ALICE, MemoryFilter(user_id="bob", categories=["even"])):
        for text in [*QUERIES, "gardens", "flights"]:  # stemmed: garden(s), flight(s)
            q = StoreQuery(filter=flt, limit=200, text=text)
            edge_hits, md_hits = (s.query(q) for s in edge_and_markdown)
            assert edge_hits and {h.record.id for h in edge_hits} == {h.record.id for h in md_hits}, (text, flt)
            assert [h.score for h in md_hits] == sorted((h.score for h in md_hits), reverse=True)


#: One sentence per language, and a word of it as a query (a sub-word of an unspaced CJK or Thai sentence, an
#: accent left out, a Korean particle attached, an English plural).
POLYGLOT = [
    ("绿茶", "我每天早上喝绿茶"),
    ("東京", "来月東京に引っ越します"),
    ("コーヒー", "私は毎朝コーヒーを飲みます"),
    ("녹차", "저는 매일 아침 녹차를 마셔요"),
    ("เชียงใหม่", "เดือนหน้าเราจะไปเที่ยวเชียงใหม่"),
    ("munchen", "Nächsten Monat ziehen wir nach München"),
    ("velo", "Hier j'ai acheté un nouveau vélo"),
    ("thé", "Elle préfère le thé vert le matin"),
    ("gardens", "Alice waters her garden every evening"),
]


def test_markdown_bm25_analyses_every_language_as_edge(edge_and_markdown: tuple[VectorStore, VectorStore]) -> None:
    """The Markdown store's BM25 terms are those of the edge/qdrant sparse vectors: a word inside a Chinese,
    Japanese, Korean or Thai sentence is found, accents are folded (it used to find none of these)."""
    for _, text in POLYGLOT:
        assert {int(t) for t in terms(text)} == set(sparse_document(text)[0]), text
    records = [rec(text, day=i) for i, (_, text) in enumerate(POLYGLOT)]
    for s in edge_and_markdown:
        put(s, records)
    for query, expected in POLYGLOT:
        assert {int(t) for t in terms(query, query=True)} == set(sparse_query(query)[0]), query
        q = StoreQuery(filter=ALICE, limit=5, text=query)
        edge_hits, md_hits = (s.query(q) for s in edge_and_markdown)
        assert [h.record.text for h in md_hits] == [expected], query
        assert [h.record.id for h in edge_hits] == [h.record.id for h in md_hits], query
