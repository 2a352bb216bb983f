"""Graph retrieval: the entities a query names, and the relations within ``hops`` of them as dated sentences.

1. **match** — an entity id matches itself; otherwise an entity matches when its name or an alias appears in the
   query as whole words (``name_key`` forms: "where does alice's sister live" names Alice), and, when no name
   appears, when the query's embedding has cosine ≥ :attr:`Thresholds.lookup` with the entity's name (at most
   3, best first).
2. **walk** — breadth first from the matched entities, one database query per hop (relations whose subject or
   object is on the frontier), ``hops`` deep (1: the entities' own relations; 2: also their neighbours'). Edges
   are walked in both directions.
3. **time** — ``as_of``: only relations that held at that world time; ``since``/``until``: relations that held
   at some moment of the range; neither: every live relation, current and past, each dated ("Alice lives in
   Berlin (until 2024-03-01)"). Deleted relations never appear.
4. **order** — nearest first (hops), then relations that still hold, then the most recent start; ``score`` is
   ``match / (1 + hops)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

import numpy as np

from ..parts import MemoryParts
from ..storage.base import Tx
from .models import Entity, GraphFact, Neighbourhood, Relation
from .names import name_key, sentence
from .resolve import DEFAULT_THRESHOLDS, Thresholds
from .storage import GraphRows

MAX_HOPS = 3


@dataclass(frozen=True)
class TimeFilter:
    as_of: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keeps(self, relation: Relation) -> bool:
        if relation.deleted_at is not None:
            return False
        if self.as_of is not None:
            return relation.holds_at(self.as_of)
        if self.since is not None or self.until is not None:
            return relation.overlaps(self.since, self.until)
        return True


def _mentions(query_key: str, entity: Entity) -> bool:
    padded = f" {query_key} "
    for alias in (entity.name, *entity.aliases):
        key = name_key(alias)
        if len(key) >= 2 and f" {key} " in padded:
            return True
    return False


def match_entities(parts: MemoryParts, tx: Tx, user_id: str, query: str,
                   thresholds: Thresholds) -> list[tuple[Entity, float]]:
    """(entity, match score) for the entities ``query`` names (see the module docstring), best first."""
    if re.fullmatch(r"[0-9a-fA-F-]{36}", query.strip()):
        found = GraphRows.entities(tx, user_id, [query.strip().lower()])
        if found:
            return [(found[0], 1.0)]
    entities, vectors = GraphRows.vectors(tx, user_id)
    if not entities:
        return []
    key = name_key(query)
    exact = [(e, 1.0) for e in entities if key in {name_key(a) for a in (e.name, *e.aliases)}]
    if exact:
        return exact
    named = [(e, 1.0) for e in entities if _mentions(key, e)]
    if named or vectors is None:
        return named
    sims = vectors @ parts.embedder.embed([query])[0]
    order = np.argsort(-sims)[:3]
    return [(entities[int(i)], float(sims[int(i)])) for i in order if sims[int(i)] >= thresholds.lookup]


def walk(tx: Tx, user_id: str, start: list[tuple[Entity, float]], *, hops: int, when: TimeFilter,
         limit: int, tz: tzinfo | None = None) -> Neighbourhood:
    """Breadth-first walk from ``start`` (see the module docstring); at most ``limit`` facts."""
    score = {e.id: s for e, s in start}
    seen_entities: dict[str, Entity] = {e.id: e for e, _ in start}
    frontier = list(score)
    facts: dict[str, tuple[Relation, int, float]] = {}
    for hop in range(hops):
        if not frontier:
            break
        next_frontier: list[str] = []
        for rel in GraphRows.relations(tx, user_id, touching=frontier, deleted=False):
            if rel.id in facts or not when.keeps(rel):
                continue
            origin = rel.subject_id if rel.subject_id in score else rel.object_id
            facts[rel.id] = (rel, hop, score.get(origin, 0.0) / (1 + hop))
            for end in (rel.subject_id, rel.object_id):
                if end not in score:
                    score[end] = score.get(origin, 0.0)
                    next_frontier.append(end)
        frontier = list(dict.fromkeys(next_frontier))
    needed = {i for rel, _, _ in facts.values() for i in (rel.subject_id, rel.object_id)} - seen_entities.keys()
    seen_entities.update((e.id, e) for e in GraphRows.entities(tx, user_id, sorted(needed)))

    def order(item: tuple[Relation, int, float]) -> tuple[int, int, float, str]:
        rel, hop, _ = item
        start_at = rel.valid_from or rel.created_at
        return (hop, 0 if rel.is_open else 1, -start_at.timestamp(), rel.id)

    out: list[GraphFact] = []
    for rel, hop, s in sorted(facts.values(), key=order)[:limit]:
        subject, obj = seen_entities.get(rel.subject_id), seen_entities.get(rel.object_id)
        if subject is None or obj is None:  # an entity erased under a relation (never by remem's own writes)
            continue
        out.append(GraphFact(relation=rel, subject=subject, object=obj, text=sentence(rel, subject, obj, tz),
                             hops=hop, score=round(s, 6)))
    return Neighbourhood(matched=[e for e, _ in start], facts=out)


def search_graph(parts: MemoryParts, query: str, *, user_id: str, hops: int = 1, when: TimeFilter | None = None,
                 limit: int = 50, thresholds: Thresholds = DEFAULT_THRESHOLDS, tz: tzinfo | None = None) -> Neighbourhood:
    """The neighbourhood of the entities ``query`` names (inputs validated by the caller)."""
    with parts.history.database.read() as tx:
        start = match_entities(parts, tx, user_id, query, thresholds)
        if not start:
            return Neighbourhood()
        return walk(tx, user_id, start, hops=hops, when=when or TimeFilter(), limit=limit, tz=tz)
