"""Baselines measured in the same run as remem: BM25-only (``bm25s``) and dense-only (brute-force cosine with
the same embedder) over the raw turns of one conversation, each turn one item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_queries
from .dataset import Turn


class BM25Baseline:
    """Okapi BM25 (bm25s defaults, English stopwords) over the turn texts."""

    name = "bm25-only"

    def __init__(self, turns: Sequence[Turn]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.ids = [t.id for t in turns]
        self.index: Any = bm25s.BM25()
        self.index.index(self._tokenize([t.memory_text() for t in turns]), show_progress=False)

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords="en", show_progress=False)

    def retrieve(self, query: str, k: int) -> list[list[str]]:
        k = min(k, len(self.ids))
        if k == 0:
            return []
        docs, scores = self.index.retrieve(self._tokenize([query]), k=k, show_progress=False)
        return [[self.ids[int(d)]] for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class DenseBaseline:
    """Exact cosine nearest neighbours over the turn embeddings (no ANN, no filters, no fusion)."""

    name = "dense-only"

    def __init__(self, turns: Sequence[Turn], embedder: Embedder) -> None:
        self.embedder = embedder
        self.ids = [t.id for t in turns]
        self.matrix = embedder.embed([t.memory_text() for t in turns]) if turns else np.zeros((0, 1))

    def retrieve(self, query: str, k: int) -> list[list[str]]:
        if not self.ids:
            return []
        sims = self.matrix @ embed_queries(self.embedder, [query])[0]
        top = np.argsort(-sims, kind="stable")[:k]
        return [[self.ids[int(i)]] for i in top]
