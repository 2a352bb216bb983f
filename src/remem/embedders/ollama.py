"""Ollama's ``/api/embed`` endpoint. ``OLLAMA_HOST`` (default ``http://localhost:11434``) is read when not given.

The dimension is learned from the first response (or pinned with ``dimensions=``) and enforced afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import numpy as np

from ..errors import EmbeddingError
from ._http import post_json
from .base import Vectors, l2_normalize


class OllamaEmbedder:
    def __init__(
        self,
        model: str = "nomic-embed-text",
        *,
        dimensions: int | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.name = f"ollama:{model}"
        host = base_url or os.environ.get("OLLAMA_HOST") or "http://localhost:11434"
        if not host.startswith("http"):
            host = f"http://{host}"
        self._url = f"{host.rstrip('/')}/api/embed"
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        data = post_json(self._client, self._url, {"model": self.model, "input": list(texts)})
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise EmbeddingError("unexpected Ollama embed response", raw_output=str(data)[:500])
        matrix = np.asarray(vectors, dtype=np.float32)
        if self._dimensions is not None and matrix.shape[1] != self._dimensions:
            raise EmbeddingError(f"Ollama returned {matrix.shape[1]}-d vectors, expected {self._dimensions}")
        self._dimensions = int(matrix.shape[1])
        return l2_normalize(matrix)
