"""Vector stores behind one contract: ``edge`` (embedded Qdrant, default), ``qdrant`` (qdrant-client) and
``markdown`` (Markdown files people edit, :mod:`remem.markdown`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import Registry
from .base import MemoryFilter, ScoredRecord, StoreQuery, VectorStore

stores: Registry[VectorStore] = Registry("store")


@stores.register("edge")
def _edge(location: str | None, *, dimensions: int, home: Path | None = None, **_: Any) -> VectorStore:
    from .edge import EdgeStore

    path = Path(location) if location else Path(home or ".") / "edge"
    return EdgeStore(path, dimensions)


@stores.register("qdrant")
def _qdrant(
    location: str | None,
    *,
    dimensions: int,
    home: Path | None = None,
    collection: str = "memories",
    api_key: str | None = None,
    **_: Any,
) -> VectorStore:
    from .qdrant import QdrantStore

    return QdrantStore(location or str(Path(home or ".") / "qdrant-local"), dimensions, collection=collection,
                       api_key=api_key)


@stores.register("markdown")
def _markdown(location: str | None, *, dimensions: int, home: Path | None = None, **_: Any) -> VectorStore:
    """Memories as Markdown files a person can read and edit (``<home>/markdown/<user>/*.md``): remem.markdown."""
    try:
        import bm25s  # noqa: F401
        import Stemmer  # noqa: F401
    except ImportError as exc:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"the Markdown store needs its extra: pip install 'remem[markdown]' ({exc})") from exc
    from ..markdown.store import MarkdownStore

    return MarkdownStore(Path(location) if location else Path(home or ".") / "markdown", dimensions)


__all__ = ["MemoryFilter", "ScoredRecord", "StoreQuery", "VectorStore", "stores"]
