"""The embedder contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text, in input order.

    ``name`` identifies the model (stored with the collection so that a different model is detected);
    ``dimensions`` is the row length. ``embed`` is the one required method; it must be deterministic for a given
    model and must return the same row for a text whether embedded alone or in a batch.

    ``embed`` embeds stored texts (documents). A model that embeds search queries differently (e5's
    ``"query: "`` prefix) also has ``embed_query(texts) -> Vectors``; callers go through :func:`embed_queries`,
    which falls back to ``embed`` for symmetric models (all the others).
    """

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def l2_normalize(matrix: npt.NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero)."""
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (m / norms).astype(np.float32)
    return out


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> Vectors:
    """Search query vectors: ``embedder.embed_query(texts)`` when the model has a query side, else ``embed``."""
    query_side = getattr(embedder, "embed_query", None)
    if callable(query_side):
        out: Vectors = query_side(texts)
        return out
    return embedder.embed(texts)
