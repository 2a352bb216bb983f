"""Vector stores behind one contract: ``edge`` (embedded Qdrant, default), ``qdrant`` (qdrant-client) and
``markdown`` (Markdown files people edit, :mod:`remem.markdown`) and ``pgvector`` (Postgres, in the history's
database)."""

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
    except ImportError as exc:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"the Markdown store needs its extra: pip install 'remem[markdown]' ({exc})") from exc
    from ..markdown.store import MarkdownStore

    return MarkdownStore(Path(location) if location else Path(home or ".") / "markdown", dimensions)


@stores.register("pgvector")
def _pgvector(location: str | None, *, dimensions: int, database: Any = None, **_: Any) -> VectorStore:
    """``pgvector``, ``pgvector:fts`` (keyword signal), ``pgvector:bm25,hnsw`` (options, comma-separated)."""
    from ..errors import ConfigurationError
    from .pgvector import KEYWORDS, PgvectorStore

    if database is None or getattr(database, "dialect", None) != "postgres":
        raise ConfigurationError("REMEM_STORE=pgvector keeps the vectors in the Postgres database of the history: "
                                 "set REMEM_DATABASE_URL=postgresql://… (and install remem[postgres])")
    options = [o.strip() for o in (location or "").split(",") if o.strip()]
    unknown = [o for o in options if o not in (*KEYWORDS, "hnsw")]
    if unknown:
        raise ConfigurationError(f"unknown pgvector option(s) {unknown} (use bm25, fts, hnsw)")
    keyword = next((o for o in options if o in KEYWORDS), "bm25")
    return PgvectorStore(database, dimensions, keyword=keyword, hnsw="hnsw" in options)  # type: ignore[arg-type]


__all__ = ["MemoryFilter", "ScoredRecord", "StoreQuery", "VectorStore", "stores"]
