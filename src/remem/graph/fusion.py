"""``Memory.search(..., graph=True)``: graph facts fused with the vector hits.

The query's entities are walked ``hops`` deep (:mod:`remem.graph.retrieval`); each fact becomes a hit whose
record is the dated sentence (``kind="fact"``, category ``graph``, ``source_ids`` = the relation's sources, so
its provenance counts in the benchmarks like any memory's; ``metadata["graph_relation"]`` = the relation id,
``signals["graph"]`` = its walk score). The two rankings — the memory hits as the retrieval pipeline ordered
them, and the graph facts nearest first — are fused by reciprocal rank (k = the search's ``rrf_k``), at most
``max_facts`` graph facts among the ``limit`` hits.

Time: explicit ``since``/``until`` keep the relations that held during that range; else a time expression in the
query ("where did Alice live in 2023?") does, resolved like the search's (``time_expressions`` "off" ignores
it); else every live relation counts, current and past, each sentence dated. The time expression names no entity
("in May 2024" does not find a person called May).

Filters: a graph hit is a ``fact`` of category ``graph``, and the search's filters apply to it like to any
memory: ``kinds`` without ``"fact"``, or ``categories`` without ``"graph"``, leave the graph out (the graph is
not even read); ``categories=["family", "graph"]`` gives family memories and graph facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..models import MemoryRecord, SearchHit, as_utc, utcnow
from ..parts import MemoryParts
from ..retrieval.search import DEFAULT_OPTIONS, SearchOptions
from ..timeexpr import aware, parse_time_range
from ..validation import check_categories, check_kinds
from . import graph_of
from .models import GraphFact
from .retrieval import TimeFilter


@dataclass(frozen=True)
class GraphFusion:
    """How graph facts join the hits: walk depth, how many facts at most, and their RRF weight."""

    hops: int = 2
    max_facts: int = 5
    weight: float = 1.0


DEFAULT_FUSION = GraphFusion()


def fact_hit(fact: GraphFact) -> SearchHit:
    """A graph fact as a search hit (see the module docstring)."""
    rel = fact.relation
    record = MemoryRecord(
        id=rel.id, user_id=rel.user_id, text=fact.text, kind="fact", categories=["graph"],
        created_at=rel.created_at, updated_at=rel.updated_at, observed_at=rel.valid_from, source_ids=rel.source_ids,
        metadata={"graph_relation": rel.id, "relation": rel.relation, "subject": fact.subject.name,
                  "object": fact.object.name, "hops": fact.hops},
    )
    return SearchHit(record=record, score=fact.score, signals={"graph": fact.score}, ranks={"graph": 0})


def time_filter(query: str, since: datetime | None, until: datetime | None, options: SearchOptions) -> TimeFilter:
    if since is not None or until is not None:
        return TimeFilter(since=as_utc(since) if since else None, until=as_utc(until) if until else None)
    if options.time_expressions == "off":
        return TimeFilter()
    found = parse_time_range(query, aware(options.reference_time) if options.reference_time else utcnow())
    return TimeFilter() if found is None else TimeFilter(since=as_utc(found.since), until=as_utc(found.until))


def fuse_graph(parts: MemoryParts, hits: list[SearchHit], query: str, *, user_id: str, limit: int,
               since: datetime | None = None, until: datetime | None = None,
               options: SearchOptions = DEFAULT_OPTIONS, fusion: GraphFusion = DEFAULT_FUSION,
               kinds: Sequence[str] | None = None, categories: Sequence[str] | None = None) -> list[SearchHit]:
    """The top ``limit`` of ``hits`` and the query's graph facts, fused by reciprocal rank (``ConfigurationError``
    when graph memory is off). ``kinds``/``categories``: the search's filters (see the module docstring)."""
    graph = graph_of(parts)
    wanted_kinds, wanted = check_kinds(kinds), check_categories(categories)
    if (wanted_kinds and "fact" not in wanted_kinds) or (wanted and "graph" not in wanted):
        return hits[:limit]
    when = time_filter(query, since, until, options)
    found = graph.neighbours(query, user_id=user_id, hops=fusion.hops, as_of=None, since=when.since,
                             until=when.until, limit=max(1, fusion.max_facts))
    if not found.facts:
        return hits[:limit]
    k = options.rrf_k
    scored: list[tuple[float, int, int, SearchHit]] = []
    for rank, hit in enumerate(hits, start=1):
        scored.append((1.0 / (k + rank), 0, rank, hit))
    for rank, fact in enumerate(found.facts, start=1):
        hit = fact_hit(fact)
        hit.ranks["graph"] = rank
        scored.append((fusion.weight / (k + rank), 1, rank, hit))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    out = []
    for score, _, _, hit in scored[:limit]:
        out.append(hit.model_copy(update={"score": score}))
    return out
