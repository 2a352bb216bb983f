"""Any embedding model LiteLLM knows (``litellm:<provider/model>``); needs the ``remem[litellm]`` extra."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Vectors, l2_normalize


class LiteLLMEmbedder:
    def __init__(self, model: str, *, dimensions: int | None = None, **options: Any) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise ConfigurationError("litellm embedders need: pip install 'remem[litellm]'") from exc
        self._litellm = litellm
        self.model = model
        self.name = f"litellm:{model}"
        self._options = options
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        kwargs = dict(self._options)
        if self._dimensions is not None:
            kwargs["dimensions"] = self._dimensions
        try:
            response = self._litellm.embedding(model=self.model, input=list(texts), **kwargs)
            vectors = [item["embedding"] for item in response.data]
        except Exception as exc:  # litellm maps providers' errors to many types; keep the cause
            raise EmbeddingError(f"litellm embedding with {self.model} failed: {exc}") from exc
        matrix = np.asarray(vectors, dtype=np.float32)
        if self._dimensions is not None and matrix.shape[1] != self._dimensions:
            raise EmbeddingError(f"{self.model} returned {matrix.shape[1]}-d vectors, expected {self._dimensions}")
        self._dimensions = int(matrix.shape[1])
        return l2_normalize(matrix)
