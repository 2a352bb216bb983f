"""The ``qdrant`` store: ``qdrant-client`` against a Qdrant server or cluster (by URL), or its local mode.

This is how a deployment outgrows one machine: the same contract as the embedded store, served by Qdrant.
``location`` is a URL (``http://host:6333``), ``:memory:``, or a directory path (client local mode: every point
in RAM, filters evaluated in Python — fine for tests and small data, not for a large embedded store).
BM25 sparse vectors are computed client-side with the same Qdrant ``Bm25`` as the edge store, with the
collection's IDF modifier, so both backends rank identically.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..errors import StoreError
from ..models import MemoryRecord
from .base import (
    INDEXES,
    STATE_FIELD,
    TIME_FIELD,
    MemoryFilter,
    ScoredRecord,
    StoreQuery,
    from_payload,
    iso,
    page_by_time,
    to_payload,
    top_k,
)
from .bm25 import LEGACY_SIGNATURE, signature, sparse_document, sparse_query

log = logging.getLogger("remem.store")

DENSE = "dense"
SPARSE = "bm25"
#: Collection metadata key: which BM25 analysis built the sparse vectors (needs Qdrant >= 1.16 on a server).
SPARSE_META = "remem_bm25"


class QdrantStore:
    name = "qdrant"

    def __init__(
        self,
        location: str,
        dimensions: int,
        *,
        collection: str = "memories",
        api_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        from qdrant_client import QdrantClient
        from qdrant_client import models as m

        self._m = m
        self.collection = collection
        self.dimensions = dimensions
        self.location = location
        try:
            if location == ":memory:":
                self._client = QdrantClient(location=":memory:")
            elif location.startswith(("http://", "https://")):
                self._client = QdrantClient(url=location, api_key=api_key, timeout=int(timeout))
            else:
                self._client = QdrantClient(path=location)
            self._ensure_collection()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open Qdrant at {location}: {exc}", location=location) from exc

    def _ensure_collection(self) -> None:
        m = self._m
        if self._client.collection_exists(self.collection):
            info = self._client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) else None
            if size is not None and size != self.dimensions:
                raise StoreError(
                    f"collection {self.collection!r} holds {size}-d vectors but the embedder makes "
                    f"{self.dimensions}-d ones",
                    stored=size,
                    embedder=self.dimensions,
                )
            stored = (info.config.metadata or {}).get(SPARSE_META, LEGACY_SIGNATURE)
            if stored != signature():
                count = self.reindex_sparse()
                log.warning("re-indexed the BM25 vectors of %d memories in %r (%s -> %s)", count,
                            self.collection, stored, signature())
                self._client.update_collection(self.collection, metadata={SPARSE_META: signature()})
            return
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=self.dimensions, distance=m.Distance.COSINE)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            metadata={SPARSE_META: signature()},
        )
        with warnings.catch_warnings():  # local mode warns that payload indexes are no-ops there
            warnings.simplefilter("ignore")
            for field, kind in INDEXES.items():
                schema: Any
                if kind == "tenant":
                    schema = m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True)
                elif kind == "keyword":
                    schema = m.PayloadSchemaType.KEYWORD
                elif kind == "datetime":
                    schema = m.PayloadSchemaType.DATETIME
                elif kind == "integer":
                    schema = m.PayloadSchemaType.INTEGER
                else:
                    raise AssertionError(kind)
                self._client.create_payload_index(self.collection, field, field_schema=schema)

    def reindex_sparse(self) -> int:
        """Recompute every point's BM25 vector from its stored text; dense vectors and payloads stay.

        Used on open when the collection's recorded BM25 analysis (collection metadata) differs from this
        remem's (see :mod:`remem.stores.bm25`); the record is updated only afterwards, so an interrupted
        re-index runs again on the next open. Returns the number of points re-indexed (live and deleted).
        """
        m = self._m
        count = 0
        offset: Any = None
        while True:
            points, offset = self._client.scroll(
                self.collection, offset=offset, limit=1000, with_payload=["text"], with_vectors=False
            )
            if points:
                vectors = []
                for p in points:
                    indices, values = sparse_document(str((p.payload or {}).get("text", "")))
                    vectors.append(m.PointVectors(
                        id=p.id, vector={SPARSE: m.SparseVector(indices=indices, values=values)}
                    ))
                self._client.update_vectors(self.collection, points=vectors, wait=True)
                count += len(points)
            if offset is None:
                break
        return count

    def _filter(self, flt: MemoryFilter) -> Any:
        m = self._m
        must: list[Any] = []
        if flt.user_id is not None:
            must.append(m.FieldCondition(key="user_id", match=m.MatchValue(value=flt.user_id)))
        if flt.categories:
            must.append(m.FieldCondition(key="categories", match=m.MatchAny(any=list(flt.categories))))
        if flt.kinds:
            must.append(m.FieldCondition(key="kind", match=m.MatchAny(any=list(flt.kinds))))
        if flt.session_id is not None:
            must.append(m.FieldCondition(key="session_id", match=m.MatchValue(value=flt.session_id)))
        if flt.seq_min is not None or flt.seq_max is not None:
            must.append(m.FieldCondition(key="seq", range=m.Range(gte=flt.seq_min, lte=flt.seq_max)))
        if flt.hash is not None:
            must.append(m.FieldCondition(key="hash", match=m.MatchValue(value=flt.hash)))
        if flt.hashes is not None:
            must.append(m.FieldCondition(key="hash", match=m.MatchAny(any=list(flt.hashes))))
        if flt.since is not None or flt.until is not None:
            must.append(
                m.FieldCondition(
                    key=TIME_FIELD,
                    range=m.DatetimeRange(
                        gte=iso(flt.since) if flt.since else None, lte=iso(flt.until) if flt.until else None
                    ),
                )
            )
        if flt.deleted is not None:
            must.append(
                m.FieldCondition(key=STATE_FIELD, match=m.MatchValue(value="deleted" if flt.deleted else "live"))
            )
        if flt.ids is not None:
            must.append(m.HasIdCondition(has_id=list(flt.ids)))
        if flt.windows:
            should: list[Any] = [
                m.Filter(must=[m.FieldCondition(key="session_id", match=m.MatchValue(value=sid)),
                               m.FieldCondition(key="seq", range=m.Range(gte=lo, lte=hi))])
                for sid, lo, hi in flt.windows
            ]
            return m.Filter(must=must, should=should)
        return m.Filter(must=must) if must else None

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if not records:
            return
        m = self._m
        points = []
        for record, vector in zip(records, vectors, strict=True):
            indices, values = sparse_document(record.text)
            points.append(
                m.PointStruct(
                    id=record.id,
                    vector={DENSE: vector.tolist(), SPARSE: m.SparseVector(indices=indices, values=values)},
                    payload=to_payload(record),
                )
            )
        self._client.upsert(self.collection, points=points, wait=True)

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        for record in records:
            self._client.overwrite_payload(self.collection, payload=to_payload(record), points=[record.id], wait=True)

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if not ids:
            return
        scoped = MemoryFilter(**{**flt.__dict__, "ids": list(ids), "deleted": None})
        self._client.delete(
            self.collection, points_selector=self._m.FilterSelector(filter=self._filter(scoped)), wait=True
        )

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        flt = MemoryFilter(user_id=user_id, deleted=None, chunks=True)
        removed = self.count(MemoryFilter(user_id=user_id, deleted=None))
        self._client.delete(
            self.collection, points_selector=self._m.FilterSelector(filter=self._filter(flt)), wait=True
        )
        return removed

    def get(self, ids: Sequence[str], flt: MemoryFilter) -> list[MemoryRecord]:
        if not ids:
            return []
        scoped = MemoryFilter(**{**flt.__dict__, "ids": list(ids)})
        points, _ = self._client.scroll(
            self.collection, scroll_filter=self._filter(scoped), limit=len(ids), with_payload=True
        )
        by_id = {str(p.id): from_payload(p.payload or {}) for p in points}
        return [by_id[i] for i in ids if i in by_id]

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        m = self._m
        query: Any
        if q.dense is not None:
            query, using = np.asarray(q.dense, dtype=np.float32).tolist(), DENSE
        elif q.text is not None:
            indices, values = sparse_query(q.text)
            if not indices:
                return []
            query, using = m.SparseVector(indices=indices, values=values), SPARSE
        else:
            raise StoreError("StoreQuery needs dense or text")
        flt = self._filter(q.filter)

        def fetch(n: int) -> list[tuple[str, float]]:
            result = self._client.query_points(
                self.collection, query=query, using=using, query_filter=flt, limit=n, with_payload=False
            )
            return [(str(p.id), float(p.score)) for p in result.points]

        best = top_k(fetch, q.limit)
        if not best:
            return []
        points = self._client.retrieve(self.collection, [i for i, _ in best], with_payload=True)
        records = {str(p.id): from_payload(p.payload or {}) for p in points}
        return [ScoredRecord(records[i], score) for i, score in best if i in records]

    def scroll(
        self, flt: MemoryFilter, *, offset: int, limit: int, order: Literal["asc", "desc"] = "desc"
    ) -> list[MemoryRecord]:
        m = self._m
        direction = m.Direction.DESC if order == "desc" else m.Direction.ASC

        def first(n: int) -> list[MemoryRecord]:
            points, _ = self._client.scroll(
                self.collection, scroll_filter=self._filter(flt), limit=n, with_payload=True,
                order_by=m.OrderBy(key=TIME_FIELD, direction=direction),
            )
            return [from_payload(p.payload or {}) for p in points]

        def at(tied: MemoryFilter) -> list[MemoryRecord]:
            n = self.count(tied)
            points, _ = self._client.scroll(
                self.collection, scroll_filter=self._filter(tied), limit=max(n, 1), with_payload=True
            )
            return [from_payload(p.payload or {}) for p in points]

        return page_by_time(first, at, flt, offset=offset, limit=limit, order=order)

    def count(self, flt: MemoryFilter) -> int:
        return int(self._client.count(self.collection, count_filter=self._filter(flt), exact=True).count)

    def close(self) -> None:
        self._client.close()
