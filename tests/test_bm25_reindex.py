"""A data directory built with the old BM25 tokenizer is re-indexed on open (sparse vectors only).

The old data is made as the previous remem made it: the same shard/collection, sparse vectors from Qdrant's
``Bm25`` with the ``word`` tokenizer, and no record of the analysis (``bm25.json`` / collection metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as q
from qdrant_client import QdrantClient
from qdrant_client import models as m

from remem.embedders.fake import FakeEmbedder
from remem.models import MemoryRecord
from remem.stores import MemoryFilter, StoreQuery
from remem.stores.bm25 import LEGACY_SIGNATURE, signature, sparse_query
from remem.stores.edge import SPARSE_META, EdgeStore
from remem.stores.qdrant import QdrantStore

DIM = 16
EMB = FakeEmbedder(DIM)
TEXTS = ["我每天早上喝绿茶", "Alice loves green tea", "저는 매일 아침 녹차를 마셔요"]
ALL = MemoryFilter(user_id=None, all_users=True, deleted=None)
OLD_BM25 = q.Bm25(q.Bm25Config(language="english"))  # what remem used before (word tokenizer)


def records() -> list[MemoryRecord]:
    return [MemoryRecord(user_id="u", text=t) for t in TEXTS]


def found(store: EdgeStore | QdrantStore, text: str) -> list[str]:
    return [h.record.text for h in store.query(StoreQuery(filter=MemoryFilter(user_id="u"), limit=3, text=text))]


def make_old_edge(path: Path) -> tuple[list[MemoryRecord], dict[str, list[float]]]:
    """An edge directory as an older remem left it: old sparse vectors, no bm25.json."""
    store = EdgeStore(path, DIM)
    recs = records()
    store.upsert(recs, EMB.embed([r.text for r in recs]))
    store.close()
    (path / SPARSE_META).unlink()
    shard = q.EdgeShard.load(str(path / "shard"))
    old = []
    for r in recs:
        vec = OLD_BM25.embed_document(r.text)
        old.append(q.PointVectors(id=r.id, vector={"bm25": q.SparseVector(indices=list(vec.indices),
                                                                          values=list(vec.values))}))
    shard.update(q.UpdateOperation.update_vectors(old))
    dense = {str(p.id): list(p.vector["dense"]) for p in shard.retrieve([r.id for r in recs], with_payload=False,
                                                                          with_vector=True)}
    shard.flush()
    shard.close()
    return recs, dense


def test_an_old_edge_directory_is_reindexed_on_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recs, dense_before = make_old_edge(tmp_path)
    with caplog.at_level("WARNING", logger="remem.store"):
        store = EdgeStore(tmp_path, DIM)
    assert "re-indexed the BM25 vectors of 3 memories" in caplog.text
    assert LEGACY_SIGNATURE in caplog.text and "我每天" not in caplog.text  # no memory text in logs
    assert found(store, "绿茶") == ["我每天早上喝绿茶"]
    assert found(store, "녹차") == ["저는 매일 아침 녹차를 마셔요"]
    assert json.loads((tmp_path / SPARSE_META).read_text()) == {"bm25": signature()}
    shard = store._open()
    dense_after = {str(p.id): list(p.vector["dense"]) for p in shard.retrieve([r.id for r in recs],
                                                                                with_payload=False, with_vector=True)}
    assert dense_after == dense_before  # dense vectors untouched: no re-embedding
    assert [r.text for r in store.get([r.id for r in recs], ALL)] == TEXTS
    store.close()


def test_the_old_vectors_really_miss_the_word(tmp_path: Path) -> None:
    make_old_edge(tmp_path)
    shard = q.EdgeShard.load(str(tmp_path / "shard"))
    indices, values = sparse_query("绿茶")
    hits = shard.query(q.QueryRequest(limit=3, query=q.Query.Nearest(q.SparseVector(indices=indices, values=values),
                                                                     using="bm25")))
    shard.close()
    assert hits == []


def test_a_current_directory_is_not_reindexed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EdgeStore(tmp_path, DIM)
    store.upsert(records(), EMB.embed(TEXTS))
    store.close()
    with caplog.at_level("WARNING", logger="remem.store"):
        store = EdgeStore(tmp_path, DIM)
    assert "re-indexed" not in caplog.text
    assert found(store, "绿茶") == ["我每天早上喝绿茶"]
    store.close()


def test_another_recorded_analysis_is_reindexed_too(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, DIM)
    store.upsert(records(), EMB.embed(TEXTS))
    assert store.reindex_sparse() == 3
    store.close()
    (tmp_path / SPARSE_META).write_text(json.dumps({"bm25": "remem-bm25/1"}))
    store = EdgeStore(tmp_path, DIM)
    assert json.loads((tmp_path / SPARSE_META).read_text()) == {"bm25": signature()}
    assert found(store, "绿茶") == ["我每天早上喝绿茶"]
    store.close()


def test_an_old_qdrant_collection_is_reindexed_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "local")
    client = QdrantClient(path=path)  # the collection an older remem created: no metadata, old vectors
    client.create_collection(
        "memories",
        vectors_config={"dense": m.VectorParams(size=DIM, distance=m.Distance.COSINE)},
        sparse_vectors_config={"bm25": m.SparseVectorParams(modifier=m.Modifier.IDF)},
    )
    recs = records()
    points = []
    for r, vector in zip(recs, EMB.embed(TEXTS), strict=True):
        old = OLD_BM25.embed_document(r.text)
        payload = {**r.model_dump(mode="json"), "t": r.created_at.isoformat(), "state": "live"}
        points.append(m.PointStruct(id=r.id, vector={"dense": vector.tolist(), "bm25": m.SparseVector(
            indices=list(old.indices), values=list(old.values))}, payload=payload))
    client.upsert("memories", points=points)
    client.close()

    store = QdrantStore(path, DIM)
    assert found(store, "绿茶") == ["我每天早上喝绿茶"]
    assert found(store, "녹차") == ["저는 매일 아침 녹차를 마셔요"]
    got = store._client.retrieve("memories", [recs[0].id], with_vectors=True)[0]
    assert np.allclose(got.vector["dense"], EMB.embed([TEXTS[0]])[0], atol=1e-6)
    store.close()
    reopened = QdrantClient(path=path)
    assert reopened.get_collection("memories").config.metadata == {"remem_bm25": signature()}
    reopened.close()


def test_a_new_qdrant_collection_records_the_analysis() -> None:
    store = QdrantStore(":memory:", DIM)
    assert store._client.get_collection("memories").config.metadata == {"remem_bm25": signature()}
    store.close()
