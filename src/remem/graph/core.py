"""The :class:`Graph` facade: a user's entities and time-aware relations (``memory.graph``).

Writes (``add``, ``add_many``, ``close``, ``delete``, ``restore``, ``merge``) run under the user's write lock
(:meth:`remem.writer.Writer.user_lock`, the lock every memory write of the user takes) and inside one database
transaction each: the rows and their :class:`~remem.graph.models.GraphEvent` commit together or not at all.
Entity resolution runs before the lock (it may ask an LM; :mod:`remem.graph.resolve`), and a new entity is
checked once more by exact name inside the transaction, so a concurrent writer cannot make a twin.

**Contradictions** (deterministic rules, no LM call; :mod:`remem.graph.timeline`): a relation in
:data:`SINGLE_VALUED` (``lives_in``, ``works_at``, …) holds one object at a time. A new one ends the relations of
the same subject and relation with another object that hold at its start — an open one is closed (``valid_to`` =
the new one's ``valid_from``, or, without one, the time it was said, which then also becomes the new one's start;
``expired_at`` = now) instead of deleted; a new one that *started before* a known one (open or ended) is older
news: it is stored as ended when the known one began. Relations in :data:`SYMMETRIC` (``married_to``,
``friend_of`` …) are one edge whichever way they are told, and a symmetric single-valued one ends by either
endpoint. A triplet with ``valid_to`` ("until last week", "moved away from Berlin") closes the matching open
relation, or is stored as a past relation. The same relation seen again (open, ended on the same day, or ended
but holding when it was said) gains the new source ids (an UPDATE event), not a twin — so a pipeline job that is
retried after a crash adds nothing twice. Any relation can be closed by hand (``close``), or deleted when it
was wrong (``delete``: hidden, restorable). ``merge`` reconciles what the joined entity then holds
(:func:`~remem.graph.timeline.reconcile`).

Every argument is checked first (:mod:`remem.graph.checks`): bad input is a ``ValidationError`` naming the field,
and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any, Literal

from ..bounds import check_optional_datetime, fail
from ..errors import NotFoundError, ValidationError
from ..models import utcnow
from ..parts import MemoryParts
from ..storage.base import Tx
from ..timeexpr import without_time_expressions
from ..validation import check_actor, check_limit, check_reason, check_user_id
from .checks import check_fact, check_hops, check_id, check_ref, check_sources, check_triplet, check_when
from .models import (
    Entity,
    EntityRef,
    GraphChange,
    GraphEvent,
    GraphEventType,
    GraphView,
    Neighbourhood,
    Relation,
    Triplet,
)
from .names import canonical_name, labels, name_key, relation_name, sentence
from .resolve import DEFAULT_THRESHOLDS, Confirm, Decision, Mention, Resolver, Thresholds
from .retrieval import TimeFilter, search_graph, walk
from .storage import GraphRows
from .timeline import SINGLE_VALUED, SYMMETRIC, joins, merge_sources, place, reconcile


def _snap(item: Entity | Relation) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _event(item: Entity | Relation, event: GraphEventType, actor: str, reason: str | None,
           at: datetime) -> GraphEvent:
    target: Literal["entity", "relation"] = "entity" if isinstance(item, Entity) else "relation"
    return GraphEvent(user_id=item.user_id, target_id=item.id, target=target, event=event, actor=actor,
                      reason=reason, created_at=at, snapshot=_snap(item))


class Graph:
    """Graph memory over a Memory's parts (``memory.graph``; see the module docstring)."""

    def __init__(self, parts: MemoryParts, *, single_valued: frozenset[str] = SINGLE_VALUED,
                 symmetric: frozenset[str] = SYMMETRIC, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.parts = parts
        self.database = parts.history.database
        self.single_valued = single_valued
        self.symmetric = symmetric
        self.thresholds = thresholds

    # -- writes ----------------------------------------------------------------------------------------------
    def add(self, subject: str | EntityRef | dict[str, Any], relation: str,
            object: str | EntityRef | dict[str, Any], *, user_id: str,
            valid_from: datetime | None = None, valid_to: datetime | None = None,
            source_ids: Sequence[str] | None = None, fact: str | None = None, observed_at: datetime | None = None,
            actor: str = "api", reason: str | None = None) -> GraphChange:
        """Add ``subject --relation--> object`` (names, :class:`EntityRef` or dicts; no LM is called: resolution
        uses its deterministic rules). Returns what changed. Raises ``ValidationError`` naming the field for a bad
        name or hint, relation (not snake_case, over 64 characters), user id, datetime, time range, source ids
        (at most 1000 labels) or fact (at most 2,000 characters); ``NotFoundError`` for an entity id the user does
        not have (:mod:`remem.graph.checks`)."""
        triplet = Triplet(subject=check_ref(subject, "subject"), relation=relation_name(relation),
                          object=check_ref(object, "object"), source_ids=check_sources(source_ids),
                          fact=check_fact(fact), valid_from=check_optional_datetime(valid_from, "valid_from"),
                          valid_to=check_optional_datetime(valid_to, "valid_to"),
                          observed_at=check_optional_datetime(observed_at, "observed_at"))
        return self.add_many([triplet], user_id=user_id, actor=actor, reason=reason)[0]

    def add_many(self, triplets: Sequence[Triplet], *, user_id: str, actor: str = "api", reason: str | None = None,
                 confirm: Confirm | None = None) -> list[GraphChange]:
        """Add several triplets in one transaction; one :class:`GraphChange` per triplet, in order. ``confirm``
        (the pipeline's LM step) decides ambiguous entity mentions; without it the deterministic rules do."""
        user_id = check_user_id(user_id)
        actor, reason = check_actor(actor), check_reason(reason)
        if isinstance(triplets, (str, bytes)) or not isinstance(triplets, Sequence):
            raise fail("triplets", f"must be a list of Triplet, got {type(triplets).__name__}")
        checked = [check_triplet(t, i) for i, t in enumerate(triplets)]
        if not checked:
            return []
        refs = [(ref, t) for t in checked for ref in (t.subject, t.object)]
        names = list(dict.fromkeys(canonical_name(ref.name)[0] for ref, _ in refs
                                    if ref.id is None and ref.name is not None))
        vectors = dict(zip(names, self.parts.embedder.embed(names), strict=True)) if names else {}
        with self.database.read() as tx:
            entities, matrix = GraphRows.vectors(tx, user_id)
        by_id = {e.id: e for e in entities}
        resolver = Resolver(self.parts.embedder, entities, matrix, self.thresholds, confirm,
                            facts_of=lambda e: self._facts_of(user_id, e))
        decisions: list[Decision] = []
        for ref, t in refs:
            if ref.id is not None:
                found = by_id.get(ref.id)
                if found is None:
                    raise NotFoundError(f"no entity {ref.id} for user {user_id}", entity_id=ref.id)
                decisions.append(Decision(entity=found, new=False))
                continue
            assert ref.name is not None
            name, dropped = canonical_name(ref.name)
            mention = Mention(name=name, key=name_key(name), type=ref.type, hint=ref.hint or dropped,
                              vector=vectors[name], context=t.fact or self._plain(t))
            decisions.append(resolver.resolve(mention, user_id))
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            now = utcnow()
            ids, entity_events = self._write_entities(tx, user_id, resolver, decisions, actor, reason, now)
            changes, events = [], []
            for i, t in enumerate(checked):
                ends = (decisions[2 * i].entity.id, decisions[2 * i + 1].entity.id)
                change = self._write_relation(tx, user_id, t, ids[ends[0]], ids[ends[1]], actor, reason, now)
                change.events[:0] = [e for end in ends for e in entity_events.pop(end, [])]
                changes.append(change)
                events += change.events
            GraphRows.record(tx, events)
        return changes

    @staticmethod
    def _plain(t: Triplet) -> str:
        return f"{t.subject.name or t.subject.id} {t.relation.replace('_', ' ')} {t.object.name or t.object.id}"

    def _facts_of(self, user_id: str, entity: Entity) -> list[str]:
        with self.database.read() as tx:
            return [f.text for f in walk(tx, user_id, [(entity, 1.0)], hops=1, when=TimeFilter(), limit=3).facts]

    def _write_entities(self, tx: Tx, user_id: str, resolver: Resolver, decisions: list[Decision], actor: str,
                        reason: str | None, now: datetime) -> tuple[dict[str, str], dict[str, list[GraphEvent]]]:
        """Write new and changed entities (their latest version in the resolver); returns (id -> stored id,
        id -> its events)."""
        latest = {e.id: e for e in resolver.entities}
        vectors = dict(zip((e.id for e in resolver.entities), resolver.vectors, strict=False))
        ids: dict[str, str] = {}
        events: dict[str, list[GraphEvent]] = {}
        new_ids = {d.entity.id for d in decisions if d.new}
        changed_ids = {d.entity.id for d in decisions if d.changed and not d.new}
        for d in decisions:
            eid = d.entity.id
            if eid in ids:
                continue
            entity = latest.get(eid, d.entity)
            if eid in new_ids:
                twin = [e for e in GraphRows.by_key(tx, user_id, name_key(entity.name)) if e.id not in latest
                        and e.type == entity.type and resolver.hints_agree(entity.hint, e.hint)]
                if len(twin) == 1:  # written by a concurrent writer since resolution read the entities
                    ids[eid] = twin[0].id
                    continue
                entity = entity.model_copy(update={"created_at": now, "updated_at": now})
                GraphRows.put_entity(tx, entity, name_key(entity.name), vectors.get(eid))
                events[eid] = [_event(entity, GraphEventType.ADD, actor, reason, now)]
            elif eid in changed_ids:
                entity = entity.model_copy(update={"updated_at": now})
                GraphRows.put_entity(tx, entity, name_key(entity.name), None)
                events[eid] = [_event(entity, GraphEventType.UPDATE, actor, reason or "new alias or hint", now)]
            ids[eid] = eid
        return ids, events

    def _known(self, tx: Tx, user_id: str, t: Triplet, subject_id: str, object_id: str,
               said: datetime) -> tuple[Relation | None, list[Relation]]:
        """(the same relation already stored, if any; the others on its timeline: live relations of the same
        name and subject — or, when symmetric, touching either end — with another object)."""
        symmetric = t.relation in self.symmetric
        touching = [subject_id, object_id] if symmetric else [subject_id]
        live = [r for r in GraphRows.relations(tx, user_id, touching=touching) if r.relation == t.relation
                and (symmetric or r.subject_id == subject_id)]
        mine = [r for r in live if joins(r, subject_id, object_id, symmetric)]
        at = t.valid_from or said
        same = (next((r for r in mine if r.is_open), None)
                or next((r for r in mine if t.valid_to is not None and r.valid_to == t.valid_to), None)
                or next((r for r in mine if t.valid_to is None and r.holds_at(at)), None))
        mine_ids = {r.id for r in mine}
        return same, [r for r in live if r.id not in mine_ids]

    def _write_relation(self, tx: Tx, user_id: str, t: Triplet, subject_id: str, object_id: str, actor: str,
                        reason: str | None, now: datetime) -> GraphChange:
        said = t.observed_at or now
        stored = {e.id: e for e in GraphRows.entities(tx, user_id, [subject_id, object_id])}
        entities = [stored[i] for i in dict.fromkeys([subject_id, object_id]) if i in stored]
        same, others = self._known(tx, user_id, t, subject_id, object_id, said)
        if same is not None:
            return self._seen_again(tx, same, t, entities, actor, reason, now)
        new = Relation(user_id=user_id, subject_id=subject_id, relation=t.relation, object_id=object_id,
                       valid_from=t.valid_from, valid_to=t.valid_to, created_at=now, updated_at=now,
                       source_ids=t.source_ids, fact=t.fact, metadata=t.metadata)
        events: list[GraphEvent] = []
        closed: list[Relation] = []
        if t.relation in self.single_valued and subject_id != object_id:
            placed = place(new, others, said=said, now=now,
                           because=f"contradicted by {t.relation} {t.object.name or object_id}")
            new = placed.relation
            for ended in placed.ended:
                GraphRows.put_relation(tx, ended.relation)
                events.append(_event(ended.relation, ended.event, actor, reason or ended.reason, now))
                closed.append(ended.relation)
        GraphRows.put_relation(tx, new)
        events.insert(0, _event(new, GraphEventType.ADD, actor, reason, now))
        return GraphChange(relation=new, created=True, closed=closed, entities=entities, events=events)

    def _seen_again(self, tx: Tx, same: Relation, t: Triplet, entities: list[Entity], actor: str,
                    reason: str | None, now: datetime) -> GraphChange:
        """The relation is known: add its new sources and start date; close it if the triplet ends it."""
        update: dict[str, Any] = {}
        sources = merge_sources(same.source_ids, t.source_ids)
        if sources != same.source_ids:
            update["source_ids"] = sources
        if t.valid_from is not None and same.valid_from is None:
            update["valid_from"] = t.valid_from
        closing = t.valid_to is not None and same.valid_to is None and same.expired_at is None
        if closing:
            update.update(valid_to=t.valid_to, expired_at=now)
        if not update:
            return GraphChange(relation=same, created=False, entities=entities)
        after = same.model_copy(update={**update, "updated_at": now})
        if after.valid_from is not None and after.valid_to is not None and after.valid_to < after.valid_from:
            after = after.model_copy(update={"valid_from": None})
        GraphRows.put_relation(tx, after)
        kind = GraphEventType.CLOSE if closing else GraphEventType.UPDATE
        event = _event(after, kind, actor, reason or ("ended" if closing else "seen again"), now)
        return GraphChange(relation=after, created=False, closed=[after] if closing else [], entities=entities,
                           events=[event])

    def close(self, relation_id: str, *, user_id: str, valid_to: datetime | None = None, actor: str = "api",
              reason: str | None = None) -> Relation:
        """End an open relation: ``valid_to`` (world time, default now) and ``expired_at`` = now; kept, dated.
        ``NotFoundError`` if the user has no such live relation, ``ValidationError`` if it already ended or
        ``valid_to`` is before its start."""
        user_id = check_user_id(user_id)
        end_at = check_optional_datetime(valid_to, "valid_to")
        actor, reason = check_actor(actor), check_reason(reason)
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            rel = self._live(tx, user_id, relation_id)
            if rel.valid_to is not None or rel.expired_at is not None:
                raise ValidationError(f"relation {rel.id} has already ended", relation_id=rel.id)
            now = utcnow()
            end = end_at if end_at is not None else now
            if rel.valid_from is not None and end < rel.valid_from:
                raise ValidationError("valid_to is before the relation's valid_from", field="valid_to")
            done = rel.model_copy(update={"valid_to": end, "expired_at": now, "updated_at": now})
            GraphRows.put_relation(tx, done)
            GraphRows.record(tx, [_event(done, GraphEventType.CLOSE, actor, reason, now)])
        return done

    def delete(self, relation_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> Relation:
        """Soft-delete a wrong relation (hidden from every read, kept in history, undone by :meth:`restore`)."""
        user_id = check_user_id(user_id)
        actor, reason = check_actor(actor), check_reason(reason)
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            rel = self._live(tx, user_id, relation_id)
            now = utcnow()
            done = rel.model_copy(update={"deleted_at": now, "updated_at": now})
            GraphRows.put_relation(tx, done)
            GraphRows.record(tx, [_event(done, GraphEventType.DELETE, actor, reason, now)])
        return done

    def restore(self, relation_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> Relation:
        """Undo :meth:`delete` (``NotFoundError`` unless the user has such a deleted relation)."""
        user_id = check_user_id(user_id)
        actor, reason = check_actor(actor), check_reason(reason)
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            rel = GraphRows.relation(tx, user_id, check_id(relation_id, "relation_id"))
            if rel is None or rel.deleted_at is None:
                raise NotFoundError(f"no deleted relation {relation_id} for user {user_id}", relation_id=relation_id)
            now = utcnow()
            done = rel.model_copy(update={"deleted_at": None, "updated_at": now})
            GraphRows.put_relation(tx, done)
            GraphRows.record(tx, [_event(done, GraphEventType.RESTORE, actor, reason, now)])
        return done

    def merge(self, keep_id: str, other_id: str, *, user_id: str, actor: str = "api",
              reason: str | None = None) -> Entity:
        """Join two entities resolution kept apart: ``other``'s relations move to ``keep``, its name and aliases
        become ``keep``'s aliases, ``other`` is removed (a MERGE event keeps it), and what ``keep`` then holds is
        reconciled (:func:`~remem.graph.timeline.reconcile`: no relation with itself, no open duplicates, one
        open object per single-valued relation)."""
        user_id = check_user_id(user_id)
        keep_id, other_id = check_id(keep_id, "entity_id"), check_id(other_id, "other_id")
        actor, reason = check_actor(actor), check_reason(reason)
        if keep_id == other_id:
            raise ValidationError("cannot merge an entity into itself", field="other_id")
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            found = {e.id: e for e in GraphRows.entities(tx, user_id, [keep_id, other_id])}
            for eid in (keep_id, other_id):
                if eid not in found:
                    raise NotFoundError(f"no entity {eid} for user {user_id}", entity_id=eid)
            keep, other = found[keep_id], found[other_id]
            now = utcnow()
            aliases = list(dict.fromkeys([*keep.aliases, other.name, *other.aliases]))
            aliases = [a for a in aliases if name_key(a) != name_key(keep.name)]
            kept = keep.model_copy(update={"aliases": aliases, "hint": keep.hint or other.hint, "updated_at": now})
            GraphRows.put_entity(tx, kept, name_key(kept.name), None)
            events = [_event(other, GraphEventType.MERGE, actor, reason or f"merged into {keep.name}", now),
                      _event(kept, GraphEventType.UPDATE, actor, reason or f"merged {other.name}", now)]
            for rel in GraphRows.relations(tx, user_id, touching=[other_id], deleted=None):
                moved = rel.model_copy(update={
                    "subject_id": keep_id if rel.subject_id == other_id else rel.subject_id,
                    "object_id": keep_id if rel.object_id == other_id else rel.object_id, "updated_at": now})
                GraphRows.put_relation(tx, moved)
                events.append(_event(moved, GraphEventType.UPDATE, actor, f"entity {other.name} merged", now))
            GraphRows.drop_entity(tx, user_id, other_id)
            for fix in reconcile(GraphRows.relations(tx, user_id, touching=[keep_id]), keep_id,
                                 single_valued=self.single_valued, symmetric=self.symmetric, now=now,
                                 merged=other.name):
                GraphRows.put_relation(tx, fix.relation)
                events.append(_event(fix.relation, fix.event, actor, fix.reason, now))
            GraphRows.record(tx, events)
        return kept

    # -- reads -----------------------------------------------------------------------------------------------
    def neighbours(self, entity_or_text: str, *, user_id: str, hops: int = 1, as_of: datetime | None = None,
                   since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                   tz: tzinfo | None = None) -> Neighbourhood:
        """The relations within ``hops`` (1–3) of the entities ``entity_or_text`` names (an entity id, a name,
        or free text: time expressions in it such as "in May 2024" name no entity), as dated sentences with their
        source ids (:mod:`remem.graph.retrieval`). ``as_of``: only what held then; ``since``/``until``: what held
        during the range (``since`` after ``until`` is a ``ValidationError``); ``tz``: the calendar dates are
        shown on. Entities that share a name are told apart by their hint (``Neighbourhood.labels``)."""
        user_id = check_user_id(user_id)
        text = self.parts.text(entity_or_text, "entity_or_text")
        hops = check_hops(hops)
        check_limit(limit)
        when = check_when(as_of, since, until)
        if tz is not None and not isinstance(tz, tzinfo):
            raise fail("tz", f"must be a datetime.tzinfo (e.g. ZoneInfo('Europe/Berlin')), got {type(tz).__name__}")
        return search_graph(self.parts, text, user_id=user_id, hops=hops, when=when, limit=limit,
                            thresholds=self.thresholds, tz=tz, match_text=without_time_expressions(text))

    def view(self, *, user_id: str, deleted: bool = False) -> GraphView:
        """Every entity and relation of the user (closed ones included; ``deleted=True`` adds deleted ones)."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            return GraphView(entities=GraphRows.entities(tx, user_id),
                             relations=GraphRows.relations(tx, user_id, deleted=None if deleted else False))

    def entity(self, entity_id: str, *, user_id: str) -> Entity:
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            found = GraphRows.entities(tx, user_id, [check_id(entity_id, "entity_id")])
        if not found:
            raise NotFoundError(f"no entity {entity_id} for user {user_id}", entity_id=entity_id)
        return found[0]

    def relation(self, relation_id: str, *, user_id: str) -> Relation:
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            rel = GraphRows.relation(tx, user_id, check_id(relation_id, "relation_id"))
        if rel is None:
            raise NotFoundError(f"no relation {relation_id} for user {user_id}", relation_id=relation_id)
        return rel

    def history(self, target_id: str, *, user_id: str) -> list[GraphEvent]:
        """Every recorded change of one entity or relation, oldest first (``NotFoundError`` if none)."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            events = GraphRows.events(tx, user_id, check_id(target_id))
        if not events:
            raise NotFoundError(f"no graph history for {target_id} of user {user_id}", target_id=target_id)
        return events

    def events(self, *, user_id: str) -> list[GraphEvent]:
        """Every graph event of the user, oldest first."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            return GraphRows.events(tx, user_id)

    def describe(self, relation: Relation, *, user_id: str) -> str:
        """The sentence a relation reads as ("Maya lives in Lisbon (since 2024-03-01)"; "Maya (Alice's sister)
        …" when the user has another Maya)."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            ents = {e.id: e for e in GraphRows.entities(tx, user_id, [relation.subject_id, relation.object_id])}
            if len(ents) < len({relation.subject_id, relation.object_id}):
                raise NotFoundError(f"no relation {relation.id} for user {user_id}", relation_id=relation.id)
            namesakes = GraphRows.by_keys(tx, user_id, [name_key(e.name) for e in ents.values()])
        return sentence(relation, ents[relation.subject_id], ents[relation.object_id],
                        names=labels(ents.values(), namesakes))

    # -- helpers ---------------------------------------------------------------------------------------------
    def _live(self, tx: Tx, user_id: str, relation_id: str) -> Relation:
        rel = GraphRows.relation(tx, user_id, check_id(relation_id, "relation_id"))
        if rel is None or rel.deleted_at is not None:
            raise NotFoundError(f"no live relation {relation_id} for user {user_id}", relation_id=relation_id)
        return rel
