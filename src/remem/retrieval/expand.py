"""Post-fusion shaping of a result list: near-duplicate removal and neighbour expansion.

A raw turn is often meaningless alone ("Yes, last Friday!"): the turns around it carry the subject. With
``neighbors=n`` each returned episode brings the ``n`` turns before and after it in its session as
:attr:`~remem.models.SearchHit.context` (looked up by ``session_id`` + ``seq`` range through the store filter).
So that ``limit`` hits cover up to ``limit * (2n + 1)`` distinct turns, a hit already inside the window of a
better hit is skipped (it would add nothing), as is a hit whose text nearly duplicates a better hit's
(token-set Jaccard similarity ≥ :data:`NEAR_DUPLICATE`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from ..models import SearchHit
from ..stores.base import MemoryFilter, VectorStore

#: Token-set Jaccard similarity at which two hits count as the same memory.
NEAR_DUPLICATE = 0.9
_TOKEN = re.compile(r"\w+")


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text.casefold()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _covered(windows: dict[str, list[tuple[int, int]]], hit: SearchHit) -> bool:
    r = hit.record
    if r.session_id is None or r.seq is None:
        return False
    return any(lo <= r.seq <= hi for lo, hi in windows.get(r.session_id, ()))


def diversify_sessions(hits: Sequence[SearchHit], factor: float, n: int) -> list[SearchHit]:
    """Greedy re-ranking: each hit's score is multiplied by ``factor`` per better hit already taken from its
    session, so the top of the list spans more sessions (facts scattered over a history: multi-hop)."""
    pool = list(hits)
    taken: defaultdict[str | None, int] = defaultdict(int)
    out: list[SearchHit] = []
    while pool and len(out) < n:
        best = max(range(len(pool)), key=lambda i: pool[i].score * factor ** taken[pool[i].record.session_id])
        hit = pool.pop(best)
        if hit.record.session_id is not None:
            taken[hit.record.session_id] += 1
        out.append(hit)
    return out + pool


def collapse_and_expand(
    store: VectorStore,
    hits: Sequence[SearchHit],
    *,
    user_id: str,
    limit: int,
    neighbors: int,
    dedupe: bool,
    skip_covered: bool = False,
    session_diversity: float = 1.0,
) -> list[SearchHit]:
    """The best ``limit`` hits after de-duplication, each with its ``neighbors`` turns either side as context."""
    accepted: list[SearchHit] = []
    seen_tokens: list[frozenset[str]] = []
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    if session_diversity < 1.0:
        hits = diversify_sessions(hits, session_diversity, limit * 3)
    for hit in hits:
        if len(accepted) >= limit:
            break
        if skip_covered and neighbors and _covered(windows, hit):
            continue
        if dedupe:
            toks = _tokens(hit.record.text)
            if any(jaccard(toks, other) >= NEAR_DUPLICATE for other in seen_tokens):
                continue
            seen_tokens.append(toks)
        accepted.append(hit)
        r = hit.record
        if neighbors and r.session_id is not None and r.seq is not None:
            windows[r.session_id].append((r.seq - neighbors, r.seq + neighbors))
    if neighbors:
        expandable = [h for h in accepted if h.record.session_id is not None and h.record.seq is not None]
        if expandable:
            # One store call for every window (a should-filter of session + seq range per hit); the limit
            # exceeds what the windows can hold, so the store never runs its tie-resolution pass.
            spans = [(h.record.session_id or "", (h.record.seq or 0) - neighbors, (h.record.seq or 0) + neighbors)
                     for h in expandable]
            cap = len(spans) * (2 * neighbors + 1) + 1
            around = store.scroll(MemoryFilter(user_id=user_id, windows=spans), offset=0, limit=cap, order="asc")
            by_pos = {(r.session_id, r.seq): r for r in around}
            for hit in expandable:
                r, seq = hit.record, hit.record.seq or 0
                hit.context = [by_pos[(r.session_id, i)] for i in range(seq - neighbors, seq + neighbors + 1)
                               if i != seq and (r.session_id, i) in by_pos]
    return accepted
