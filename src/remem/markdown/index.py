"""The in-memory index of one user's memories: filters as numpy masks, exact dense cosine, and BM25 (bm25s).

Built from the user's records when first needed after a change (the dense matrix and the BM25 index each only
when a query needs them), so a write costs nothing here and a read after a batch of writes rebuilds once.

- **Filters**: every :class:`~remem.stores.base.MemoryFilter` field is a boolean mask over the records (time
  range on ``observed_at`` else ``created_at``, categories, kinds, session, seq range and windows, hashes, ids,
  state), the same semantics as the Qdrant stores.
- **Dense**: exact cosine over the user's vectors (normalised on write), like the embedded Qdrant store's exact
  per-user scan, so scores equal the edge store's within float noise.
- **BM25**: ``bm25s`` (Lucene BM25, k1=1.2, b=0.75 — the Lucene and Qdrant defaults) over the user's records,
  on the terms of the edge and qdrant stores (:func:`terms`): remem's multilingual analysis
  (:func:`remem.stores.bm25.analyze`: CJK bigrams, ICU word break for Thai, Lao, Khmer and Myanmar, accent
  folding), then Qdrant's own English stop words and Snowball stemmer (:func:`remem.stores.bm25.bm25_model`), so
  a word is found inside a sentence in every language, as on the other stores. IDF and document lengths are the
  user's own, so scores differ from Qdrant's BM25 (IDF over the whole collection, a fixed average length):
  rankings are close, scores are not comparable across stores (stated in the store contract suite).

Ties are broken as the Qdrant stores do (:func:`remem.stores.base.top_k`): score to 5 decimals, then id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from ..models import MemoryRecord, as_utc
from ..stores.base import SCORE_DECIMALS, MemoryFilter, time_of
from ..stores.bm25 import analyze, bm25_model

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
K1, B = 1.2, 0.75


def micros(value: datetime) -> int:
    return (as_utc(value) - EPOCH) // timedelta(microseconds=1)


@lru_cache(maxsize=1 << 18)
def _term(word: str) -> str | None:
    """The index term of one analysed word as Qdrant's ``Bm25`` makes it (stop word: None; else its stem, named
    by the hash Qdrant gives it: the same term as on the edge and qdrant stores)."""
    indices = bm25_model().embed_query(word).indices
    return str(indices[0]) if len(indices) else None


def terms(text: str, *, query: bool = False) -> list[str]:
    """BM25 terms of ``text`` in order (a query's distinct terms): :func:`remem.stores.bm25.analyze`, then English
    stop words removed and words stemmed by Qdrant's ``Bm25`` (see the module docstring)."""
    out = [t for word in analyze(text, query=query) if (t := _term(word)) is not None]
    return list(dict.fromkeys(out)) if query else out


class Columns:
    """One user's records (sorted by id) as arrays; immutable: a change builds a new one."""

    def __init__(self, records: Sequence[MemoryRecord], vectors: Mapping[str, np.ndarray], dimensions: int) -> None:
        self.records = sorted(records, key=lambda r: r.id)
        n = len(self.records)
        self.pos = {r.id: i for i, r in enumerate(self.records)}
        self.t = np.fromiter((micros(time_of(r)) for r in self.records), dtype=np.int64, count=n)
        self.deleted = np.fromiter((r.deleted_at is not None for r in self.records), dtype=bool, count=n)
        self.seq = np.fromiter((np.nan if r.seq is None else float(r.seq) for r in self.records), dtype=np.float64,
                               count=n)
        self.kinds: dict[str, np.ndarray] = {}
        self.categories: dict[str, np.ndarray] = {}
        self.sessions: dict[str, np.ndarray] = {}
        self.hashes: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            self._flag(self.kinds, r.kind, i)
            for c in r.categories:
                self._flag(self.categories, c, i)
            if r.session_id is not None:
                self._flag(self.sessions, r.session_id, i)
            self.hashes.setdefault(r.hash, []).append(i)
        self._vectors = vectors
        self._dimensions = dimensions
        self._matrix: np.ndarray | None = None
        self._bm25: Any = None

    def _flag(self, table: dict[str, np.ndarray], key: str, i: int) -> None:
        mask = table.get(key)
        if mask is None:
            mask = table[key] = np.zeros(len(self.records), dtype=bool)
        mask[i] = True

    def _any(self, table: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(self.records), dtype=bool)
        for k in keys:
            if k in table:
                out |= table[k]
        return out

    def _at(self, positions: Sequence[int]) -> np.ndarray:
        out = np.zeros(len(self.records), dtype=bool)
        out[list(positions)] = True
        return out

    def _seq(self, lo: int | None, hi: int | None) -> np.ndarray:
        out = ~np.isnan(self.seq)
        if lo is not None:
            out &= self.seq >= lo
        if hi is not None:
            out &= self.seq <= hi
        return out

    def mask(self, flt: MemoryFilter) -> np.ndarray:
        """Records matching every condition of ``flt`` (its user is this index's user)."""
        out = np.ones(len(self.records), dtype=bool)
        if flt.deleted is not None:
            out &= self.deleted if flt.deleted else ~self.deleted
        if flt.categories:
            out &= self._any(self.categories, flt.categories)
        if flt.kinds:
            out &= self._any(self.kinds, flt.kinds)
        if flt.session_id is not None:
            out &= self._any(self.sessions, [flt.session_id])
        if flt.seq_min is not None or flt.seq_max is not None:
            out &= self._seq(flt.seq_min, flt.seq_max)
        if flt.hash is not None:
            out &= self._at(self.hashes.get(flt.hash, []))
        if flt.hashes is not None:
            out &= self._at([i for h in set(flt.hashes) for i in self.hashes.get(h, [])])
        if flt.since is not None:
            out &= self.t >= micros(flt.since)
        if flt.until is not None:
            out &= self.t <= micros(flt.until)
        if flt.ids is not None:
            out &= self._at([self.pos[i] for i in flt.ids if i in self.pos])
        if flt.windows:
            near = np.zeros(len(self.records), dtype=bool)
            for session, lo, hi in flt.windows:
                near |= self._any(self.sessions, [session]) & self._seq(lo, hi)
            out &= near
        return out

    # -- signals -------------------------------------------------------------------------------------------------
    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            m = np.zeros((len(self.records), self._dimensions), dtype=np.float32)
            for i, r in enumerate(self.records):
                v = self._vectors.get(r.id)
                if v is not None:
                    m[i] = v
            self._matrix = m
        return self._matrix

    def dense(self, mask: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indexes, cosine scores) of the masked records; records without a vector score 0."""
        idx = np.flatnonzero(mask)
        q = np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        scores = self.matrix()[idx] @ (q / norm if norm > 0 else q)
        return idx, scores.astype(np.float64)

    def bm25(self, mask: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(indexes, BM25 scores) of the masked records that share a term with ``text`` (score > 0)."""
        query = terms(text, query=True)
        if not query or not self.records:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if self._bm25 is None:
            import bm25s

            index = bm25s.BM25(k1=K1, b=B)
            index.index([terms(r.text) for r in self.records], show_progress=False)
            self._bm25 = index
        scores = np.asarray(self._bm25.get_scores(query), dtype=np.float64)
        idx = np.flatnonzero(mask & (scores > 0))
        return idx, scores[idx]


def best(idx: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The top ``limit`` (index, score) pairs: score to 5 decimals descending, then id (= index) ascending."""
    if limit <= 0 or len(idx) == 0:
        return []
    order = np.lexsort((idx, -np.round(scores, SCORE_DECIMALS)))[:limit]
    return [(int(idx[o]), float(scores[o])) for o in order]
