"""Embedders: text -> unit vectors, behind one small Protocol and a name registry.

Built-in specs: ``local`` (all-MiniLM-L6-v2 int8 ONNX, offline, no torch — the default), ``multilingual``
(multilingual-e5-small, 4-bit, offline; ``remem[multilingual]``), ``fake[:dim]`` (deterministic, for tests),
``openai:<model>`` (pinned ``dimensions``), ``ollama:<model>``, ``litellm:<model>``.
Providers are imported only when created.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Embedder, embed_queries, l2_normalize

embedders: Registry[Embedder] = Registry("embedder")


@embedders.register("local")
def _local(model: str | None, **options: Any) -> Embedder:
    from .local import LocalOnnxEmbedder

    return LocalOnnxEmbedder(**options)


@embedders.register("multilingual")
def _multilingual(model: str | None, **options: Any) -> Embedder:
    from .multilingual import MultilingualE5Embedder

    return MultilingualE5Embedder(model=model or "e5-small", **options)


@embedders.register("fake")
def _fake(model: str | None, **options: Any) -> Embedder:
    from .fake import FakeEmbedder

    if model:
        if not model.isdigit() or not 1 <= int(model) <= 65_536:
            from ..errors import ConfigurationError

            raise ConfigurationError(f"fake embedder: the dimension must be an integer from 1 to 65536, got {model!r}")
        options.setdefault("dimensions", int(model))
    return FakeEmbedder(**options)


@embedders.register("openai")
def _openai(model: str | None, **options: Any) -> Embedder:
    from .openai import OpenAIEmbedder

    return OpenAIEmbedder(model=model or "text-embedding-3-small", **options)


@embedders.register("ollama")
def _ollama(model: str | None, **options: Any) -> Embedder:
    from .ollama import OllamaEmbedder

    return OllamaEmbedder(model=model or "nomic-embed-text", **options)


@embedders.register("litellm")
def _litellm(model: str | None, **options: Any) -> Embedder:
    from .litellm import LiteLLMEmbedder

    if not model:
        from ..errors import ConfigurationError

        raise ConfigurationError("litellm embedder needs a model, e.g. 'litellm:cohere/embed-english-v3.0'")
    return LiteLLMEmbedder(model=model, **options)


def get_embedder(spec: str | Embedder, **options: Any) -> Embedder:
    """An embedder from a spec string (or the object itself, passed through)."""
    if isinstance(spec, str):
        return embedders.create(spec, **{k: v for k, v in options.items() if v is not None})
    return spec


__all__ = ["Embedder", "embed_queries", "embedders", "get_embedder", "l2_normalize"]
