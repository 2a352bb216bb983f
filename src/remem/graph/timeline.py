"""The time rules of single-valued and symmetric relations: deterministic, no LM call, pure functions over
:class:`~remem.graph.models.Relation` values (the caller, :class:`remem.graph.core.Graph`, reads and writes them).

**Single-valued** relations (:data:`SINGLE_VALUED`: ``lives_in``, ``works_at``, ``married_to`` …) hold one object
at a time for a subject. :func:`place` puts a new one on the subject's timeline of that relation — every other
live (not deleted) relation of the same subject and relation with another object, open or ended:

1. no start date (and no end): it starts when it was said (``observed_at``, default now);
2. *older news*: a known relation that starts later bounds it — it is stored as ended when the next known one
   began ("lived in Paris since 2018", learned after "Berlin 2019-2024, then Lisbon since 2024", is Paris
   2018-2019), whether that next one is still open or already ended;
3. a known relation that holds at its start ends there: an open one is *closed* (``valid_to`` = the new start,
   ``expired_at`` = now; a move), an ended one whose known end lies later has its end moved back to the new start
   (the two cannot both hold). So at no instant do two objects hold.

A relation with only an end date ("until 2020", start unknown) changes no other relation.

**Symmetric** relations (:data:`SYMMETRIC`: ``married_to``, ``partner_of``, ``friend_of`` …) are one edge whatever
the direction: "Bob married_to Alice" is the known "Alice married_to Bob" seen again, and for a symmetric
single-valued relation the timeline is per *endpoint*: "Alice married_to Carol" ends "Bob married_to Alice".

:func:`reconcile` applies the same rules after :meth:`remem.graph.Graph.merge` joined two entities: a relation of
the kept entity with itself is deleted ("John sister_of Jon" after merging Jon into John), open duplicates fold
into the oldest (their sources joined), and of several open single-valued relations only the latest-starting
one stays open (each other one ends when the next began).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from .models import MAX_SOURCE_IDS, GraphEventType, Relation

#: Relations that hold one object at a time for a subject (a new object ends the old relation).
SINGLE_VALUED: frozenset[str] = frozenset({
    "lives_in", "works_at", "works_as", "married_to", "partner_of", "dating", "engaged_to", "located_in",
    "based_in", "studies_at", "reports_to", "age_is", "job_is",
})

#: Relations whose direction carries no meaning: one edge whichever way it is told.
SYMMETRIC: frozenset[str] = frozenset({
    "married_to", "partner_of", "dating", "engaged_to", "friend_of", "friends_with", "sibling_of", "cousin_of",
    "colleague_of", "neighbour_of", "neighbor_of", "roommate_of", "knows",
})


def ends(relation: Relation) -> tuple[str, str]:
    return relation.subject_id, relation.object_id


def joins(relation: Relation, a: str, b: str, symmetric: bool) -> bool:
    """Whether ``relation`` links ``a`` to ``b`` (either way round when symmetric)."""
    return ends(relation) == (a, b) or (symmetric and ends(relation) == (b, a))


def end_of(relation: Relation) -> datetime | None:
    """When it stopped holding (``valid_to``, else ``expired_at`` for one retired without a date), or None."""
    return relation.valid_to or relation.expired_at


def merge_sources(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Both lists, old first, each id once; at most :data:`MAX_SOURCE_IDS` (the newest are kept)."""
    joined = list(dict.fromkeys([*old, *new]))
    return joined[-MAX_SOURCE_IDS:]


@dataclass
class Ended:
    """A known relation a new one ended: its new version, the event kind (CLOSE: it was open; UPDATE: its known
    end moved back) and why."""

    relation: Relation
    event: GraphEventType
    reason: str


@dataclass
class Placement:
    relation: Relation
    ended: list[Ended] = field(default_factory=list)


def place(new: Relation, others: Sequence[Relation], *, said: datetime, now: datetime, because: str) -> Placement:
    """Put ``new`` (of a single-valued relation, not yet stored) on the timeline of ``others`` (see the module
    docstring). ``said``: when it was said; ``because``: the reason recorded on what it ends."""
    start, stop = new.valid_from, new.valid_to
    if not others or (start is None and stop is not None):
        return Placement(new)
    if start is None:
        start = said
    later = [r.valid_from for r in others if r.valid_from is not None and r.valid_from > start]
    if later:
        stop = min([*later, *([stop] if stop is not None else [])])
    out = Placement(new.model_copy(update={"valid_from": start, "valid_to": stop}))
    for r in others:
        known_end = end_of(r)
        if (r.valid_from is not None and r.valid_from > start) or (known_end is not None and known_end <= start):
            continue  # it starts later (bounded the new one above) or was over before the new one began
        cut = max(start, r.valid_from) if r.valid_from is not None else start
        if r.valid_to is None and r.expired_at is None:
            done = r.model_copy(update={"valid_to": cut, "expired_at": now, "updated_at": now})
            out.ended.append(Ended(done, GraphEventType.CLOSE, because))
        else:
            done = r.model_copy(update={"valid_to": cut, "updated_at": now})
            out.ended.append(Ended(done, GraphEventType.UPDATE, f"ended earlier: {because}"))
    return out


def _start(r: Relation) -> datetime:
    return r.valid_from or r.created_at


def reconcile(relations: Sequence[Relation], entity_id: str, *, single_valued: frozenset[str],
              symmetric: frozenset[str], now: datetime, merged: str) -> list[Ended]:
    """The changes that make the live ``relations`` of ``entity_id`` consistent after a merge (see the module
    docstring); ``merged`` names the entity merged in (for the reasons). DELETE events for self-relations and
    folded duplicates, UPDATE for the relation a duplicate folded into, CLOSE for single-valued ones ended."""
    out: list[Ended] = []
    live = [r for r in relations if r.deleted_at is None]
    keep: list[Relation] = []
    for r in live:
        if ends(r) == (entity_id, entity_id):
            out.append(Ended(r.model_copy(update={"deleted_at": now, "updated_at": now}), GraphEventType.DELETE,
                             f"a relation of an entity with itself once {merged} was merged into it"))
        else:
            keep.append(r)
    survivors: dict[tuple[str, frozenset[str] | tuple[str, str]], Relation] = {}
    for r in sorted((r for r in keep if r.is_open), key=lambda r: (r.created_at, r.id)):
        key = (r.relation, frozenset(ends(r)) if r.relation in symmetric else ends(r))
        first = survivors.get(key)
        if first is None:
            survivors[key] = r
            continue
        sources = merge_sources(first.source_ids, r.source_ids)
        start = min((d for d in (first.valid_from, r.valid_from) if d is not None), default=None)
        first = first.model_copy(update={"source_ids": sources, "valid_from": start, "updated_at": now})
        survivors[key] = first
        out.append(Ended(r.model_copy(update={"deleted_at": now, "updated_at": now}), GraphEventType.DELETE,
                         f"the same relation as {first.id} once {merged} was merged"))
    for r in survivors.values():
        if any(r != k for k in keep if k.id == r.id):
            out.append(Ended(r, GraphEventType.UPDATE, f"joined a duplicate once {merged} was merged"))
    for name in single_valued:
        current = [r for r in survivors.values() if r.relation == name
                   and (r.subject_id == entity_id or (name in symmetric and r.object_id == entity_id))]
        current.sort(key=lambda r: (_start(r), r.created_at, r.id))
        for r, nxt in pairwise(current):
            cut = max(_start(nxt), r.valid_from) if r.valid_from is not None else _start(nxt)
            done = next((e.relation for e in out if e.relation.id == r.id), r)
            out = [e for e in out if e.relation.id != r.id]
            out.append(Ended(done.model_copy(update={"valid_to": cut, "expired_at": now, "updated_at": now}),
                             GraphEventType.CLOSE, f"{name} holds one at a time once {merged} was merged"))
    return out
