"""Ranking: fusing the dense and BM25 signals into one list (pure functions, no I/O)."""

from .fusion import fuse_rrf

__all__ = ["fuse_rrf"]
