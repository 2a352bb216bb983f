"""Graph retrieval: the entities a query names, and the relations within ``hops`` of them as dated sentences.

1. **match** — an entity id matches itself; otherwise an entity matches when its name or an alias appears in the
   query as whole words (``name_key`` forms: "where does alice's sister live" names Alice) outside the query's
   time expressions ("in May 2024" names no entity called May: :func:`remem.timeexpr.without_time_expressions`),
   and, when no name appears, when the query's embedding has cosine ≥ :attr:`Thresholds.lookup` with the
   entity's name (at most 3, best first) — unless both carry identifiers and the entity's are not all in the
   query ("Room 102" is not found by "where is room 101?"; :func:`~remem.graph.names.identifiers`).
2. **walk** — breadth first from the matched entities, one database query per hop (relations whose subject or
   object is on the frontier), ``hops`` deep (1: the entities' own relations; 2: also their neighbours'). Edges
   are walked in both directions.
3. **time** — ``as_of``: only relations that held at that world time; ``since``/``until``: relations that held
   at some moment of the range; neither: every live relation, current and past, each dated ("Alice lives in
   Berlin (until 2024-03-01)"). Deleted relations never appear.
4. **order** — nearest first (hops), then relations that still hold, then the most recent start; ``score`` is
   ``match / (1 + hops)``.
5. **labels** — an entity that shares its name with another of the user's is shown with its hint (else its type,
   else a short id): "Maya (Alice's sister) lives in Lisbon" (:func:`~remem.graph.names.labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

import numpy as np

from ..parts import MemoryParts
from ..storage.base import Tx
from .models import Entity, GraphFact, Neighbourhood, Relation
from .names import identifiers, labels, name_key, sentence
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


def match_entities(parts: MemoryParts, tx: Tx, user_id: str, query: str, thresholds: Thresholds,
                   match_text: str | None = None) -> list[tuple[Entity, float]]:
    """(entity, match score) for the entities ``query`` names (see the module docstring), best first.
    ``match_text``: the query with its time expressions blanked (default: the query)."""
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
    text = query if match_text is None else match_text
    named_key = name_key(text)
    named = [(e, 1.0) for e in entities if _mentions(named_key, e)]
    if named or vectors is None or not named_key:
        return named
    sims = vectors @ parts.embedder.embed([text])[0]
    asked = identifiers(text)
    out: list[tuple[Entity, float]] = []
    for i in np.argsort(-sims):
        entity, sim = entities[int(i)], float(sims[int(i)])
        if sim < thresholds.lookup or len(out) == 3:
            break
        own = identifiers(entity.name)
        if own and asked and not own <= asked:
            continue  # "Room 102" is not what "where is room 101?" asks about
        out.append((entity, sim))
    return out


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
    names = labels(seen_entities.values(), GraphRows.by_keys(tx, user_id, [name_key(e.name)
                                                                         for e in seen_entities.values()]))

    def order(item: tuple[Relation, int, float]) -> tuple[int, int, float, str]:
        rel, hop, _ = item
        start_at = rel.valid_from or rel.created_at
        return (hop, 0 if rel.is_open else 1, -start_at.timestamp(), rel.id)

    out: list[GraphFact] = []
    for rel, hop, s in sorted(facts.values(), key=order)[:limit]:
        subject, obj = seen_entities.get(rel.subject_id), seen_entities.get(rel.object_id)
        if subject is None or obj is None:  # an entity erased under a relation (never by remem's own writes)
            continue
        out.append(GraphFact(relation=rel, subject=subject, object=obj, text=sentence(rel, subject, obj, tz, names),
                             hops=hop, score=round(s, 6)))
    shown = {e.id for e, _ in start} | {i for f in out for i in (f.subject.id, f.object.id)}
    return Neighbourhood(matched=[e for e, _ in start], facts=out,
                         labels={i: label for i, label in names.items() if i in shown})


def search_graph(parts: MemoryParts, query: str, *, user_id: str, hops: int = 1, when: TimeFilter | None = None,
                 limit: int = 50, thresholds: Thresholds = DEFAULT_THRESHOLDS, tz: tzinfo | None = None,
                 match_text: str | None = None) -> Neighbourhood:
    """The neighbourhood of the entities ``query`` names (inputs validated by the caller; ``match_text``: the
    query with its time expressions blanked)."""
    with parts.history.database.read() as tx:
        start = match_entities(parts, tx, user_id, query, thresholds, match_text)
        if not start:
            return Neighbourhood()
        return walk(tx, user_id, start, hops=hops, when=when or TimeFilter(), limit=limit, tz=tz)
