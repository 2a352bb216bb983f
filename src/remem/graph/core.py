"""The :class:`Graph` facade: a user's entities and time-aware relations (``memory.graph``).

Writes (``add``, ``add_many``, ``close``, ``delete``, ``restore``, ``merge``) run under the user's write lock
(:meth:`remem.writer.Writer.user_lock`, the lock every memory write of the user takes) and inside one database
transaction each: the rows and their :class:`~remem.graph.models.GraphEvent` commit together or not at all.
Entity resolution runs before the lock (it may ask an LM; :mod:`remem.graph.resolve`), and a new entity is
checked once more by exact name inside the transaction, so a concurrent writer cannot make a twin.

**Contradictions** (a deterministic rule, no LM call): a relation in :data:`SINGLE_VALUED` (``lives_in``,
``works_at``, …) holds one object at a time. A new one closes the open relations of the same subject and
relation with another object — ``valid_to`` = the new one's ``valid_from`` (or, without one, the time it was
said, which then also becomes the new one's start), ``expired_at`` = now — instead of deleting them; a new one
that *started before* a known open one is older news: it is stored as ended when the known one began. A triplet
with ``valid_to`` ("until last week", "moved away from Berlin") closes the matching open relation, or is stored
as a past relation. The same relation seen again (open, or ended on the same day) gains the new source ids (an
UPDATE event), not a twin — so a pipeline job that is retried after a crash adds nothing twice.
Any relation can be closed by hand (``close``), or deleted when it was wrong (``delete``: hidden, restorable).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any, Literal

from ..errors import NotFoundError, ValidationError
from ..models import as_utc, utcnow
from ..parts import MemoryParts
from ..storage.base import Tx
from ..validation import check_limit, check_user_id
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
from .names import canonical_name, check_name, name_key, relation_name, sentence
from .resolve import DEFAULT_THRESHOLDS, Confirm, Decision, Mention, Resolver, Thresholds
from .retrieval import MAX_HOPS, TimeFilter, search_graph, walk
from .storage import GraphRows

#: Relations that hold one object at a time for a subject (a new object closes the old relation).
SINGLE_VALUED: frozenset[str] = frozenset({
    "lives_in", "works_at", "works_as", "married_to", "partner_of", "dating", "engaged_to", "located_in",
    "based_in", "studies_at", "reports_to", "age_is", "job_is",
})


def _ref(value: object, field: str) -> EntityRef:
    if isinstance(value, EntityRef):
        ref = value
    elif isinstance(value, str):
        ref = EntityRef(name=value)
    elif isinstance(value, dict):
        try:
            ref = EntityRef.model_validate(value)
        except ValueError as exc:
            raise ValidationError(f"{field} is not a valid entity reference: {exc}", field=field) from exc
    else:
        raise ValidationError(f"{field} must be a name, an EntityRef or a dict", field=field)
    if ref.id is None:
        check_name(ref.name, f"{field}.name")
    return ref


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
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.parts = parts
        self.database = parts.history.database
        self.single_valued = single_valued
        self.thresholds = thresholds

    # -- writes ----------------------------------------------------------------------------------------------
    def add(self, subject: str | EntityRef | dict[str, Any], relation: str,
            object: str | EntityRef | dict[str, Any], *, user_id: str,
            valid_from: datetime | None = None, valid_to: datetime | None = None,
            source_ids: Sequence[str] | None = None, fact: str | None = None, observed_at: datetime | None = None,
            actor: str = "api", reason: str | None = None) -> GraphChange:
        """Add ``subject --relation--> object`` (names, :class:`EntityRef` or dicts; no LM is called: resolution
        uses its deterministic rules). Returns what changed. Raises ``ValidationError`` for a bad name, relation
        (not snake_case), user id or time range; ``NotFoundError`` for an entity id the user does not have."""
        triplet = Triplet(subject=_ref(subject, "subject"), relation=relation, object=_ref(object, "object"),
                          valid_from=valid_from, valid_to=valid_to, source_ids=list(source_ids or []), fact=fact,
                          observed_at=observed_at)
        return self.add_many([triplet], user_id=user_id, actor=actor, reason=reason)[0]

    def add_many(self, triplets: Sequence[Triplet], *, user_id: str, actor: str = "api", reason: str | None = None,
                 confirm: Confirm | None = None) -> list[GraphChange]:
        """Add several triplets in one transaction; one :class:`GraphChange` per triplet, in order. ``confirm``
        (the pipeline's LM step) decides ambiguous entity mentions; without it the deterministic rules do."""
        user_id = check_user_id(user_id)
        checked = [self._check(t, i) for i, t in enumerate(triplets)]
        if not checked:
            return []
        refs = [(ref, t) for t in checked for ref in (t.subject, t.object)]
        names = [canonical_name(ref.name) for ref, _ in refs if ref.id is None and ref.name is not None]
        vectors = iter(self.parts.embedder.embed([n for n, _ in names])) if names else iter(())
        with self.database.read() as tx:
            entities, matrix = GraphRows.vectors(tx, user_id)
        by_id = {e.id: e for e in entities}
        resolver = Resolver(self.parts.embedder, entities, matrix, self.thresholds, confirm,
                            facts_of=lambda e: self._facts_of(user_id, e))
        decisions: list[Decision] = []
        for ref, t in refs:
            if ref.id is not None:
                found = by_id.get(ref.id.lower())
                if found is None:
                    raise NotFoundError(f"no entity {ref.id} for user {user_id}", entity_id=ref.id)
                decisions.append(Decision(entity=found, new=False))
                continue
            assert ref.name is not None
            name, dropped = canonical_name(ref.name)
            hint = " ".join(ref.hint.split()) if ref.hint and ref.hint.strip() else dropped
            mention = Mention(name=check_name(name, "entity name"), key=name_key(name), type=ref.type, hint=hint,
                              vector=next(vectors), context=t.fact or self._plain(t))
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

    def _check(self, t: Triplet, index: int) -> Triplet:
        if not isinstance(t, Triplet):
            raise ValidationError(f"triplet {index} is a {type(t).__name__}, not a Triplet")
        name = relation_name(t.relation, f"triplet {index} relation")
        if t.valid_from is not None and t.valid_to is not None and t.valid_to < t.valid_from:
            raise ValidationError(f"triplet {index}: valid_to is before valid_from", field="valid_to")
        sources = [s for s in dict.fromkeys(t.source_ids) if isinstance(s, str) and s.strip()]
        return t.model_copy(update={"relation": name, "source_ids": sources,
                                    "subject": _ref(t.subject, "subject"), "object": _ref(t.object, "object")})

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

    def _write_relation(self, tx: Tx, user_id: str, t: Triplet, subject_id: str, object_id: str, actor: str,
                        reason: str | None, now: datetime) -> GraphChange:
        said = t.observed_at or now
        open_same = GraphRows.open_relations(tx, user_id, subject_id, t.relation)
        same = next((r for r in open_same if r.object_id == object_id and r.valid_to is None), None)
        stored = {e.id: e for e in GraphRows.entities(tx, user_id, [subject_id, object_id])}
        entities = [stored[i] for i in dict.fromkeys([subject_id, object_id]) if i in stored]
        if same is None and t.valid_to is not None:  # an ended relation told again (a retried job): no twin
            same = next((r for r in GraphRows.relations(tx, user_id, touching=[subject_id])
                         if (r.subject_id, r.relation, r.object_id, r.valid_to) ==
                         (subject_id, t.relation, object_id, t.valid_to)), None)
        if same is not None:
            return self._seen_again(tx, same, t, entities, actor, reason, now)
        new = Relation(user_id=user_id, subject_id=subject_id, relation=t.relation, object_id=object_id,
                       valid_from=t.valid_from, valid_to=t.valid_to, created_at=now, updated_at=now,
                       source_ids=t.source_ids, fact=t.fact, metadata=t.metadata)
        events: list[GraphEvent] = []
        closed: list[Relation] = []
        others = [r for r in open_same if r.object_id != object_id and r.valid_to is None]
        if t.relation in self.single_valued and new.valid_to is None and others:
            later = [r.valid_from for r in others if r.valid_from is not None and new.valid_from is not None
                     and new.valid_from < r.valid_from]
            if later:  # older news: it ended when the known relation began
                new = new.model_copy(update={"valid_to": min(later)})
            else:
                end = new.valid_from or said
                for other in others:
                    stop = max(end, other.valid_from) if other.valid_from is not None else end
                    done = other.model_copy(update={"valid_to": stop, "expired_at": now, "updated_at": now})
                    GraphRows.put_relation(tx, done)
                    events.append(_event(done, GraphEventType.CLOSE, actor,
                                         reason or f"contradicted by {t.relation} {t.object.name or object_id}", now))
                    closed.append(done)
                if new.valid_from is None:
                    new = new.model_copy(update={"valid_from": end})
        GraphRows.put_relation(tx, new)
        events.insert(0, _event(new, GraphEventType.ADD, actor, reason, now))
        return GraphChange(relation=new, created=True, closed=closed, entities=entities, events=events)

    def _seen_again(self, tx: Tx, same: Relation, t: Triplet, entities: list[Entity], actor: str,
                    reason: str | None, now: datetime) -> GraphChange:
        """The open relation is known: add its new sources and start date; close it if the triplet ends it."""
        update: dict[str, Any] = {}
        sources = list(dict.fromkeys([*same.source_ids, *t.source_ids]))
        if sources != same.source_ids:
            update["source_ids"] = sources
        if t.valid_from is not None and same.valid_from is None:
            update["valid_from"] = t.valid_from
        closing = t.valid_to is not None and same.valid_to is None
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
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            rel = self._live(tx, user_id, relation_id)
            if rel.valid_to is not None or rel.expired_at is not None:
                raise ValidationError(f"relation {rel.id} has already ended", relation_id=rel.id)
            now = utcnow()
            end = as_utc(valid_to) if valid_to is not None else now
            if rel.valid_from is not None and end < rel.valid_from:
                raise ValidationError("valid_to is before the relation's valid_from", field="valid_to")
            done = rel.model_copy(update={"valid_to": end, "expired_at": now, "updated_at": now})
            GraphRows.put_relation(tx, done)
            GraphRows.record(tx, [_event(done, GraphEventType.CLOSE, actor, reason, now)])
        return done

    def delete(self, relation_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> Relation:
        """Soft-delete a wrong relation (hidden from every read, kept in history, undone by :meth:`restore`)."""
        user_id = check_user_id(user_id)
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
        with self.parts.writer.user_lock(user_id), self.database.transaction() as tx:
            rel = GraphRows.relation(tx, user_id, self._rid(relation_id))
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
        become ``keep``'s aliases, and ``other`` is removed (a MERGE event keeps it)."""
        user_id = check_user_id(user_id)
        if keep_id == other_id:
            raise ValidationError("cannot merge an entity into itself")
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
            GraphRows.record(tx, events)
        return kept

    # -- reads -----------------------------------------------------------------------------------------------
    def neighbours(self, entity_or_text: str, *, user_id: str, hops: int = 1, as_of: datetime | None = None,
                   since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                   tz: tzinfo | None = None) -> Neighbourhood:
        """The relations within ``hops`` (1–3) of the entities ``entity_or_text`` names (an entity id, a name,
        or free text), as dated sentences with their source ids (:mod:`remem.graph.retrieval`). ``as_of``: only
        what held then; ``since``/``until``: what held during the range; ``tz``: the calendar dates are shown on."""
        user_id = check_user_id(user_id)
        text = self.parts.text(entity_or_text, "entity_or_text")
        if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
            raise ValidationError(f"hops must be an integer from 1 to {MAX_HOPS}, got {hops!r}", field="hops")
        check_limit(limit)
        if as_of is not None and (since is not None or until is not None):
            raise ValidationError("give as_of or since/until, not both", field="as_of")
        when = TimeFilter(as_of=as_utc(as_of) if as_of else None, since=as_utc(since) if since else None,
                          until=as_utc(until) if until else None)
        return search_graph(self.parts, text, user_id=user_id, hops=hops, when=when, limit=limit,
                            thresholds=self.thresholds, tz=tz)

    def view(self, *, user_id: str, deleted: bool = False) -> GraphView:
        """Every entity and relation of the user (closed ones included; ``deleted=True`` adds deleted ones)."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            return GraphView(entities=GraphRows.entities(tx, user_id),
                             relations=GraphRows.relations(tx, user_id, deleted=None if deleted else False))

    def entity(self, entity_id: str, *, user_id: str) -> Entity:
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            found = GraphRows.entities(tx, user_id, [self._rid(entity_id)])
        if not found:
            raise NotFoundError(f"no entity {entity_id} for user {user_id}", entity_id=entity_id)
        return found[0]

    def relation(self, relation_id: str, *, user_id: str) -> Relation:
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            rel = GraphRows.relation(tx, user_id, self._rid(relation_id))
        if rel is None:
            raise NotFoundError(f"no relation {relation_id} for user {user_id}", relation_id=relation_id)
        return rel

    def history(self, target_id: str, *, user_id: str) -> list[GraphEvent]:
        """Every recorded change of one entity or relation, oldest first (``NotFoundError`` if none)."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            events = GraphRows.events(tx, user_id, self._rid(target_id))
        if not events:
            raise NotFoundError(f"no graph history for {target_id} of user {user_id}", target_id=target_id)
        return events

    def events(self, *, user_id: str) -> list[GraphEvent]:
        """Every graph event of the user, oldest first."""
        user_id = check_user_id(user_id)
        with self.database.read() as tx:
            return GraphRows.events(tx, user_id)

    def describe(self, relation: Relation, *, user_id: str) -> str:
        """The sentence a relation reads as ("Maya lives in Lisbon (since 2024-03-01)")."""
        with self.database.read() as tx:
            ents = {e.id: e for e in GraphRows.entities(tx, user_id, [relation.subject_id, relation.object_id])}
        return sentence(relation, ents[relation.subject_id], ents[relation.object_id])

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _rid(value: object) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise ValidationError(f"invalid id {value!r}", field="id")
        return value.strip().lower()

    def _live(self, tx: Tx, user_id: str, relation_id: str) -> Relation:
        rel = GraphRows.relation(tx, user_id, self._rid(relation_id))
        if rel is None or rel.deleted_at is not None:
            raise NotFoundError(f"no live relation {relation_id} for user {user_id}", relation_id=relation_id)
        return rel
