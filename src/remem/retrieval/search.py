"""The retrieval pipeline behind :meth:`remem.Memory.search`.

One query runs, in order:

1. **time** — with no explicit ``since``/``until``, a time expression in the query ("last week", "in May 2023")
   is resolved by :func:`~remem.timeexpr.parse_time_range` against ``reference_time``, on the calendar of its
   time zone (an aware ``reference_time`` is the caller's local time; naive = UTC; default: now, UTC).
   ``time_expressions="boost"`` (default) adds one more ranked list — the dense ranking restricted to that range —
   to the fusion, so memories from that time rise but a wrong parse cannot hide the right memory;
   ``"filter"`` makes it a hard filter; ``"off"`` ignores it.
2. **signals** — dense cosine and BM25 rankings from the store, each ``depth`` deep, filtered by user, kind,
   category and time (hard filters).
3. **fusion** — weighted reciprocal-rank fusion (:mod:`remem.retrieval.fusion`), ``k`` = :data:`DEFAULT_RRF_K`.
   **Pseudo-relevance feedback** (``feedback_terms``): the words shared by several of the top
   ``feedback_docs`` fused hits are appended to the query for one more BM25 ranking, fused in (one extra
   store query, no extra embedding: it finds turns that share the topic but not the question's wording).
   Optional score shaping, off by default because it did not help on the dev data: ``neighbour_smoothing``
   (add adjacent turns' scores), ``speaker_boost`` (turns by a speaker the query names),
   ``session_diversity`` (MMR-like spread over sessions).
4. **recency** — optional: multiply the fused score by ``1 + recency * 2^(-age/half-life)``, age measured from the
   newest candidate (so old corpora are not all "stale").
5. **threshold** — optional minimum cosine similarity to the query.
6. **de-duplication and neighbour expansion** — see :mod:`remem.retrieval.expand`.

Every default is the value measured best on the LoCoMo and LongMemEval dev data with ``remem bench`` (README,
"Retrieval and benchmarks"); none is tuned per dataset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import numpy as np

from ..embedders import Embedder
from ..embedders.base import embed_queries
from ..errors import ValidationError
from ..models import MemoryKind, MemoryRecord, SearchHit, as_utc, utcnow
from ..parts import MemoryParts
from ..stores.base import MemoryFilter, ScoredRecord, StoreQuery, VectorStore
from ..timeexpr import TimeRange, aware, parse_time_range
from ..validation import (
    check_categories,
    check_kinds,
    check_limit,
    check_range,
    check_search_args,
    check_user_id,
)
from .expand import collapse_and_expand
from .fusion import fuse_rrf

_WORD = re.compile(r"\w+")
SearchMode = Literal["hybrid", "dense", "bm25"]
TimeMode = Literal["boost", "filter", "off"]

#: RRF's k. The textbook 60 flattens the fusion; measured on LoCoMo dev (recall@10, +-1 expansion):
#: k=5 0.816, 10 0.813, 20 0.787, 30 0.770, 60 0.754.
DEFAULT_RRF_K = 10

#: Candidates each signal contributes before fusion: max(limit * CANDIDATE_FACTOR, MIN_CANDIDATES).
CANDIDATE_FACTOR = 3
MIN_CANDIDATES = 30


@dataclass(frozen=True)
class SearchOptions:
    """Ranking knobs. Defaults are the measured best (see the module docstring and the README).

    ``weights`` are per-signal RRF weights (``dense``, ``bm25``, ``time``, ``feedback``; missing = 1.0).
    ``skip_covered`` drops a hit that lies inside a better hit's neighbour window (off: measured -3 points of
    LoCoMo recall@10, adjacent hits mark a relevant region and their windows reach further).
    """

    mode: SearchMode = "hybrid"
    rrf_k: int = DEFAULT_RRF_K
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0, "time": 1.0})
    expand_neighbors: int = 1
    dedupe: bool = True
    recency: float = 0.0
    neighbour_smoothing: float = 0.0
    speaker_boost: float = 0.0
    skip_covered: bool = False
    session_diversity: float = 1.0
    feedback_terms: int = 10
    feedback_docs: int = 5
    feedback_depth: int | None = None  # None: ``limit`` (as good as the full depth on the dev data, cheaper)
    recency_half_life_days: float = 30.0
    time_expressions: TimeMode = "boost"
    reference_time: datetime | None = None  # the caller's local time (aware); naive = UTC; None = now, UTC

    def with_(self, **changes: object) -> SearchOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_OPTIONS = SearchOptions()


def _resolve_time(
    query: str, since: datetime | None, until: datetime | None, opts: SearchOptions
) -> tuple[datetime | None, datetime | None, TimeRange | None]:
    """Explicit bounds win; else a parsed expression becomes a filter or a boost range.

    The expression is counted on the calendar of ``reference_time``'s own tzinfo (the caller's zone: pass an
    aware datetime, ideally with a ``ZoneInfo`` so ranges across DST are exact); naive = UTC; None = now, UTC.
    """
    if since is not None or until is not None or opts.time_expressions == "off":
        return since, until, None
    found = parse_time_range(query, aware(opts.reference_time) if opts.reference_time else utcnow())
    if found is None:
        return since, until, None
    if opts.time_expressions == "filter":
        return found.since, found.until, None
    return since, until, found


def _apply_recency(hits: list[SearchHit], opts: SearchOptions) -> list[SearchHit]:
    times = [h.record.observed_at or h.record.created_at for h in hits]
    if not hits or opts.recency <= 0:
        return hits
    newest = max(times)
    half_life = opts.recency_half_life_days * 86400.0
    for hit, t in zip(hits, times, strict=True):
        age = (newest - t).total_seconds()
        hit.score *= 1.0 + opts.recency * 2.0 ** (-age / half_life)
    return sorted(hits, key=lambda h: (-h.score, min(h.ranks.values()), h.record.id))


def _smooth(hits: list[SearchHit], alpha: float) -> list[SearchHit]:
    """Add ``alpha`` x the fused score of each candidate's adjacent turns (same session, seq +-1): a turn in
    a region of several hits is more likely relevant than an isolated one."""
    if alpha <= 0:
        return hits
    by_pos = {(h.record.session_id, h.record.seq): h.score for h in hits if h.record.seq is not None}
    for h in hits:
        r = h.record
        if r.seq is not None and r.session_id is not None:
            h.score += alpha * (by_pos.get((r.session_id, r.seq - 1), 0.0) + by_pos.get((r.session_id, r.seq + 1), 0.0))
    return sorted(hits, key=lambda h: (-h.score, min(h.ranks.values()), h.record.id))


def _boost_speakers(hits: list[SearchHit], query: str, beta: float) -> list[SearchHit]:
    """Multiply by ``1 + beta`` the score of turns whose speaker the query names ("What does Melanie ...")."""
    if beta <= 0:
        return hits
    words = set(_WORD.findall(query.casefold()))
    for h in hits:
        if h.record.speaker and h.record.speaker.casefold() in words:
            h.score *= 1.0 + beta
    return sorted(hits, key=lambda h: (-h.score, min(h.ranks.values()), h.record.id))


_STOP = frozenset(
    ["a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yeah", "yes", "oh", "wow", "really", "so", "thanks", "thank", "great", "good"]
)


def feedback_query(query: str, texts: Sequence[str], n_terms: int) -> str:
    """Pseudo-relevance feedback: the query plus the ``n_terms`` words most frequent in the top hits (not
    stop words, not already in the query, seen in at least two hits)."""
    have = set(_WORD.findall(query.casefold()))
    counts: dict[str, int] = {}
    for text in texts:
        for w in set(_WORD.findall(text.casefold())):
            if w not in have and w not in _STOP and len(w) > 2 and not w.isdigit():
                counts[w] = counts.get(w, 0) + 1
    extra = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= 2][:n_terms]
    return " ".join([query, *extra]) if extra else query


def _apply_threshold(embedder: Embedder, hits: list[SearchHit], vector: np.ndarray,
                     threshold: float) -> list[SearchHit]:
    missing = [h for h in hits if "dense" not in h.signals]
    if missing:
        sims = embedder.embed([h.record.text for h in missing]) @ vector
        for h, sim in zip(missing, sims, strict=True):
            h.signals["dense"] = float(sim)
    return [h for h in hits if h.signals["dense"] >= threshold]


def search_memories(
    parts: MemoryParts,
    query: str,
    *,
    user_id: str,
    limit: int = 10,
    categories: Sequence[str] | None = None,
    kinds: Sequence[MemoryKind] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    threshold: float | None = None,
    options: SearchOptions = DEFAULT_OPTIONS,
) -> list[SearchHit]:
    """The user's memories most relevant to ``query`` (see the module docstring for the stages)."""
    check_search_args(limit=limit, threshold=threshold, since=since, until=until, options=options)
    user_id = check_user_id(user_id)
    query = parts.text(query, "query")
    store, embedder = parts.store, parts.embedder
    check_limit(limit)
    check_range(since, until)
    opts = options
    if opts.mode not in ("hybrid", "dense", "bm25"):
        raise ValidationError(f"unknown search mode {opts.mode!r}")
    if opts.time_expressions not in ("boost", "filter", "off"):
        raise ValidationError(f"unknown time_expressions {opts.time_expressions!r}")
    if not isinstance(opts.expand_neighbors, int) or opts.expand_neighbors < 0:
        raise ValidationError(f"expand_neighbors must be a non-negative integer, got {opts.expand_neighbors!r}")
    since, until, boost = _resolve_time(query, since, until, opts)
    flt = MemoryFilter(
        user_id=user_id, categories=check_categories(categories) or None, kinds=check_kinds(kinds),
        since=as_utc(since) if since else None, until=as_utc(until) if until else None,
    )
    sflt = replace(flt, chunks=True)  # the signals also see the index chunks of long memories
    depth = max(limit * CANDIDATE_FACTOR, MIN_CANDIDATES)
    need_vector = opts.mode != "bm25" or threshold is not None or boost is not None
    vector = embed_queries(embedder, [query])[0] if need_vector else None
    signals: dict[str, list[ScoredRecord]] = {}
    if opts.mode in ("hybrid", "dense"):
        signals["dense"] = store.query(StoreQuery(filter=sflt, limit=depth, dense=vector))
    if opts.mode in ("hybrid", "bm25"):
        signals["bm25"] = store.query(StoreQuery(filter=sflt, limit=depth, text=query))
    if boost is not None:
        timed = replace(sflt, since=as_utc(boost.since), until=as_utc(boost.until))
        signals["time"] = store.query(StoreQuery(filter=timed, limit=depth, dense=vector))
    signals, matched = lift_chunks(store, signals, flt)
    hits = fuse_rrf(signals, k=opts.rrf_k, weights=opts.weights)
    if opts.feedback_terms > 0 and opts.mode != "dense" and hits:
        expanded = feedback_query(query, [h.record.text for h in hits[: opts.feedback_docs]], opts.feedback_terms)
        if expanded != query:
            fb_depth = limit if opts.feedback_depth is None else max(1, opts.feedback_depth)
            feedback = store.query(StoreQuery(filter=sflt, limit=fb_depth, text=expanded))
            lifted, more = lift_chunks(store, {"feedback": feedback}, flt)
            signals["feedback"] = lifted["feedback"]
            matched = {**more, **matched}
            hits = fuse_rrf(signals, k=opts.rrf_k, weights=opts.weights)
    hits = _smooth(hits, opts.neighbour_smoothing)
    hits = _boost_speakers(hits, query, opts.speaker_boost)
    hits = _apply_recency(hits, opts)
    if threshold is not None and vector is not None:
        hits = _apply_threshold(embedder, hits, vector, threshold)
    out = collapse_and_expand(
        store, hits, user_id=user_id, limit=limit, neighbors=opts.expand_neighbors, dedupe=opts.dedupe,
        skip_covered=opts.skip_covered, session_diversity=opts.session_diversity,
    )
    for hit in out:
        hit.chunk = matched.get(hit.record.id)
    return out


def lift_chunks(
    store: VectorStore, signals: dict[str, list[ScoredRecord]], flt: MemoryFilter
) -> tuple[dict[str, list[ScoredRecord]], dict[str, MemoryRecord]]:
    """Replace each chunk hit by its memory (loaded with the query's filter: a deleted or filtered-out memory
    drops its chunks), keeping the memory's best rank in each signal; also returns, per memory found through a
    chunk, its best chunk: the highest reciprocal-rank sum over the signals, ``Σ 1 / (60 + rank)`` as in
    :func:`~remem.retrieval.fusion.fuse_rrf` (:mod:`remem.chunking`)."""
    wanted = sorted({h.record.parent_id for hits in signals.values() for h in hits
                     if h.record.kind == "chunk" and h.record.parent_id})
    if not wanted:
        return signals, {}
    parents = {p.id: p for p in store.get(wanted, flt)}
    votes: dict[str, dict[str, tuple[float, MemoryRecord]]] = {}  # parent -> chunk id -> (rrf, chunk)
    out: dict[str, list[ScoredRecord]] = {}
    for name, hits in signals.items():
        seen: set[str] = set()
        lifted: list[ScoredRecord] = []
        for rank, h in enumerate(hits):
            record = h.record
            if record.kind == "chunk":
                parent = parents.get(record.parent_id or "")
                if parent is None:
                    continue
                chunks = votes.setdefault(parent.id, {})
                chunks[record.id] = (chunks.get(record.id, (0.0, record))[0] + 1.0 / (60 + rank), record)
                record = parent
            if record.id not in seen:
                seen.add(record.id)
                lifted.append(ScoredRecord(record, h.score))
        out[name] = lifted
    matched = {pid: max(chunks.values(), key=lambda v: v[0])[1] for pid, chunks in votes.items()}
    return out, matched
