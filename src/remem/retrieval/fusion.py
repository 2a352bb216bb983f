"""Rank fusion of per-signal result lists.

Reciprocal-rank fusion (Cormack et al., 2009): ``score(d) = sum_s w_s / (k + rank_s(d))``. It needs no score
calibration between cosine similarities and BM25 scores, which live on unrelated scales. Ties are broken by the
best single rank, then by record id, so the order is deterministic across backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..models import SearchHit
from ..stores.base import ScoredRecord

RRF_K = 60


def fuse_rrf(
    signals: Mapping[str, Sequence[ScoredRecord]],
    *,
    k: int = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[SearchHit]:
    """Fuse ranked lists (signal name -> best-first results) into hits sorted by fused score."""
    fused: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for name, results in signals.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, item in enumerate(results, start=1):
            rid = item.record.id
            hit = hits.get(rid)
            if hit is None:
                hit = hits[rid] = SearchHit(record=item.record, score=0.0)
            hit.signals[name] = item.score
            hit.ranks[name] = rank
            fused[rid] = fused.get(rid, 0.0) + weight / (k + rank)
    for rid, hit in hits.items():
        hit.score = fused[rid]
    return sorted(hits.values(), key=lambda h: (-h.score, min(h.ranks.values()), h.record.id))
