"""Baselines measured in the same run as remem: BM25-only (``bm25s``) and dense-only (brute-force cosine with
the same embedder) over the records remem stores for one history (its raw turns, plus its facts when the run
loads them), each record one item. At a token budget they fill the context with their top items in rank order
(:func:`remem.retrieval.context.pack_ranked`, the renderer remem uses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_queries
from ..models import MemoryRecord


class BM25Baseline:
    """Okapi BM25 (bm25s defaults, English stopwords) over the record texts."""

    name = "bm25-only"

    def __init__(self, records: Sequence[MemoryRecord]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.records = list(records)
        self.index: Any = bm25s.BM25()
        self.index.index(self._tokenize([r.text for r in self.records]), show_progress=False)

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords="en", show_progress=False)

    def retrieve(self, query: str, k: int) -> list[MemoryRecord]:
        """The top ``k`` records with a positive score, best first."""
        k = min(k, len(self.records))
        if k == 0:
            return []
        docs, scores = self.index.retrieve(self._tokenize([query]), k=k, show_progress=False)
        return [self.records[int(d)] for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class DenseBaseline:
    """Exact cosine nearest neighbours over the record embeddings (no ANN, no filters, no fusion)."""

    name = "dense-only"

    def __init__(self, records: Sequence[MemoryRecord], embedder: Embedder) -> None:
        self.embedder = embedder
        self.records = list(records)
        self.matrix = embedder.embed([r.text for r in self.records]) if self.records else np.zeros((0, 1))

    def retrieve(self, query: str, k: int) -> list[MemoryRecord]:
        """The top ``k`` records by cosine similarity, best first."""
        if not self.records:
            return []
        sims = self.matrix @ embed_queries(self.embedder, [query])[0]
        top = np.argsort(-sims, kind="stable")[:k]
        return [self.records[int(i)] for i in top]
