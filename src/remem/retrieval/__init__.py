"""Ranking: the search pipeline (time expressions, fused dense + BM25 signals, de-duplication, neighbour
expansion). Pure functions over a store; :meth:`remem.Memory.search` delegates here."""

from ..timeexpr import TimeRange, parse_time_range
from .fusion import fuse_rrf
from .search import DEFAULT_OPTIONS, SearchOptions, search_memories

__all__ = ["DEFAULT_OPTIONS", "SearchOptions", "TimeRange", "fuse_rrf", "parse_time_range", "search_memories"]
