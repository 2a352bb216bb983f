"""OpenAI (or any OpenAI-compatible ``/embeddings`` endpoint) over plain httpx.

The output dimension is pinned (``dimensions``, default 1536 for text-embedding-3-small) and sent with every
request, so a collection never silently receives vectors of another size; a response of another size is an
error. ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are read when not given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from ._http import post_json
from .base import Vectors, l2_normalize

DEFAULT_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedder:
    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        dims = dimensions or DEFAULT_DIMENSIONS.get(model)
        if dims is None:
            raise ConfigurationError(f"openai:{model} needs an explicit dimensions=")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigurationError("openai embedder needs OPENAI_API_KEY (or api_key=)")
        self.model = model
        self.dimensions = int(dims)
        self.name = f"openai:{model}@{self.dimensions}"
        self._send_dimensions = model.startswith("text-embedding-3")
        self._batch = batch_size
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._url = f"{base}/embeddings"
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"}, timeout=timeout, transport=transport
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            chunk = list(texts[start : start + self._batch])
            payload: dict[str, object] = {"model": self.model, "input": chunk}
            if self._send_dimensions:
                payload["dimensions"] = self.dimensions
            data = post_json(self._client, self._url, payload)
            try:
                items = sorted(data["data"], key=lambda d: d["index"])
                vectors = [item["embedding"] for item in items]
            except (KeyError, TypeError) as exc:
                raise EmbeddingError("unexpected OpenAI embeddings response", raw_output=str(data)[:500]) from exc
            if len(vectors) != len(chunk) or any(len(v) != self.dimensions for v in vectors):
                raise EmbeddingError(
                    f"OpenAI returned {len(vectors)} vectors of sizes {sorted({len(v) for v in vectors})}, "
                    f"expected {len(chunk)} of {self.dimensions}"
                )
            rows.extend(vectors)
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return l2_normalize(np.asarray(rows, dtype=np.float32))
