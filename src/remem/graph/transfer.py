"""Graph lines of remem's JSONL export (:mod:`remem.transfer` calls these; files without them import as before).

After the memory and event lines, an export holds, per user, ``{"type": "entity", "entity": {...}}``,
``{"type": "relation", "relation": {...}}`` (closed and deleted ones too) and ``{"type": "graph_event",
"event": {...}}`` lines (oldest first). Entity vectors are not exported: import re-embeds the names with the
importing side's embedder, as it does memory texts.

Import follows the memories' rules: every line is validated while the file is parsed — ids, names, hints and
aliases, source ids, facts and metadata within the limits of :mod:`remem.graph.checks`, datetimes whose UTC form
exists (a bad line names its line and nothing is written); an id that exists for another user is refused; an id that exists for the same user is
skipped with its events, unless ``overwrite``, when the file's row and history replace it; a relation must name
entities of its own user (in the file or already stored). When a row's last event in the file does not describe
it (a hand-made file), an event by actor ``import`` records the imported state. The graph rows and their events
are written in one transaction, after the memories (see :func:`remem.transfer.import_jsonl`).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from ..bounds import check_metadata
from ..errors import ImportFormatError
from ..models import utcnow
from ..parts import MemoryParts
from ..storage.base import Tx
from ..validation import check_actor, check_reason, check_user_id
from .checks import check_fact, check_id, check_sources
from .models import Entity, GraphEvent, GraphEventType, Relation
from .names import check_hint, check_name, name_key, relation_name
from .storage import GraphRows

GRAPH_LINES = ("entity", "relation", "graph_event")


def graph_users(parts: MemoryParts) -> list[str]:
    """Users with graph rows (an export of everyone includes users that have a graph and no memories)."""
    with parts.history.database.read() as tx:
        return GraphRows.users(tx)


def graph_counts(parts: MemoryParts, user_id: str | None = None) -> dict[str, int]:
    """How many graph entities, relations (deleted ones included) and graph events one user (or everyone) has:
    what an export of them carries (``remem export`` reports it)."""
    with parts.history.database.read() as tx:
        out = {}
        for table in ("graph_entities", "graph_relations", "graph_events"):  # fixed names, not input
            row = (tx.fetchone(f"SELECT COUNT(*) FROM {table}") if user_id is None else
                   tx.fetchone(f"SELECT COUNT(*) FROM {table} WHERE user_id=?", (user_id,)))
            out[table] = int(row[0]) if row else 0
    return out


def write_graph_lines(parts: MemoryParts, out: TextIO, users: list[str]) -> int:
    """Write the graph lines of ``users``; returns the number of lines."""
    count = 0
    for uid in users:
        with parts.history.database.read() as tx:
            entities = GraphRows.entities(tx, uid)
            relations = GraphRows.relations(tx, uid, deleted=None)
            events = GraphRows.events(tx, uid)
        lines = [{"type": "entity", "entity": e.model_dump(mode="json")} for e in entities]
        lines += [{"type": "relation", "relation": r.model_dump(mode="json")} for r in relations]
        lines += [{"type": "graph_event", "event": e.model_dump(mode="json", exclude={"id"})} for e in events]
        out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        count += len(entities) + len(relations) + len(events)
    return count


class GraphLines:
    """The graph lines of one import file: validated by :meth:`parse`, checked against the database by
    :meth:`check`, written by :meth:`load`."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.relations: dict[str, Relation] = {}
        self.events: list[GraphEvent] = []

    def parse(self, kind: str, obj: dict[str, Any]) -> None:
        """Validate one line (raises pydantic's or remem's errors; the caller names the line)."""
        if kind == "entity":
            entity = Entity.model_validate(obj["entity"])
            check_user_id(entity.user_id)
            check_id(entity.id, "entity id")
            check_name(entity.name, "entity name")
            check_hint(entity.hint, "entity hint")
            for i, alias in enumerate(entity.aliases):
                check_name(alias, f"entity aliases[{i}]")
            if entity.id in self.entities:
                raise ImportFormatError(f"entity id {entity.id} appears twice")
            self.entities[entity.id] = entity
        elif kind == "relation":
            relation = Relation.model_validate(obj["relation"])
            check_user_id(relation.user_id)
            for name in ("id", "subject_id", "object_id"):
                check_id(getattr(relation, name), f"relation {name}")
            relation_name(relation.relation)
            check_sources(relation.source_ids, "relation source_ids")
            check_fact(relation.fact)
            check_metadata(relation.metadata, "relation metadata")
            if relation.id in self.relations:
                raise ImportFormatError(f"relation id {relation.id} appears twice")
            self.relations[relation.id] = relation
        else:
            event = GraphEvent.model_validate(obj["event"])
            check_user_id(event.user_id)
            check_id(event.target_id, "graph event target_id")
            check_actor(event.actor)
            check_reason(event.reason)
            check_metadata(event.snapshot, "graph event snapshot", max_bytes=None)
            self.events.append(event)

    def users(self) -> set[str]:
        return ({e.user_id for e in self.entities.values()} | {r.user_id for r in self.relations.values()}
                | {e.user_id for e in self.events})

    def _owners(self, tx: Tx) -> tuple[dict[str, str], dict[str, str]]:
        return (GraphRows.entity_ids_of(tx, sorted(self.entities)), GraphRows.relation_owners(tx, sorted(self.relations)))

    def check(self, parts: MemoryParts) -> None:
        """Refuse ids of another user and relations whose entities are not their user's (nothing written)."""
        with parts.history.database.read() as tx:
            entity_owner, relation_owner = self._owners(tx)
            for kind, items, owners in (("entity", self.entities, entity_owner),
                                        ("relation", self.relations, relation_owner)):
                for item_id, item in items.items():
                    if owners.get(item_id, item.user_id) != item.user_id:
                        raise ImportFormatError(f"{kind} id {item_id} already belongs to another user here; "
                                                "nothing was imported", id=item_id)
            stored = GraphRows.entity_ids_of(tx, sorted({i for r in self.relations.values()
                                                         for i in (r.subject_id, r.object_id)} - set(self.entities)))
        for r in self.relations.values():
            for end in (r.subject_id, r.object_id):
                owner = self.entities[end].user_id if end in self.entities else stored.get(end)
                if owner != r.user_id:
                    raise ImportFormatError(f"relation {r.id} names entity {end}, which user {r.user_id} does not "
                                            "have", relation_id=r.id)
        for e in self.events:
            owner = (self.entities[e.target_id].user_id if e.target_id in self.entities else
                     self.relations[e.target_id].user_id if e.target_id in self.relations else e.user_id)
            if owner != e.user_id:
                raise ImportFormatError(f"graph event of {e.target_id} names user {e.user_id}, but it belongs to "
                                        f"{owner}", target_id=e.target_id)

    def load(self, parts: MemoryParts, *, overwrite: bool) -> dict[str, int]:
        """Write the rows and events (one transaction; the caller holds the users' write locks)."""
        if not (self.entities or self.relations or self.events):
            return {}
        database = parts.history.database
        with database.read() as tx:
            entity_owner, relation_owner = self._owners(tx)
        skip = set() if overwrite else set(entity_owner) | set(relation_owner)
        entities = [e for e in self.entities.values() if e.id not in skip]
        relations = [r for r in self.relations.values() if r.id not in skip]
        events = [e for e in self.events if e.target_id not in skip]
        vectors = list(parts.embedder.embed([e.name for e in entities])) if entities else []
        with database.transaction() as tx:
            for replaced in (set(entity_owner) | set(relation_owner)) - skip:
                tx.execute("DELETE FROM graph_events WHERE target_id=?", (replaced,))
            for entity, vector in zip(entities, vectors, strict=True):
                GraphRows.put_entity(tx, entity, name_key(entity.name), vector)
            for relation in relations:
                GraphRows.put_relation(tx, relation)
            GraphRows.record(tx, [*events, *_agreeing(entities, relations, events)])
        return {"graph_entities": len(entities), "graph_relations": len(relations), "graph_events": len(events),
                "graph_skipped": len(skip)}


def _agreeing(entities: list[Entity], relations: list[Relation], events: list[GraphEvent]) -> list[GraphEvent]:
    """Events that make the graph history describe each imported row (history is the system of record)."""
    last: dict[str, GraphEvent] = {}
    for e in events:
        if e.event is not GraphEventType.MERGE:
            last[e.target_id] = e
    now = utcnow()
    out = []
    items: list[Entity | Relation] = [*entities, *relations]
    for item in items:
        prior = last.get(item.id)
        if prior is not None and prior.snapshot == item.model_dump(mode="json"):
            continue
        out.append(GraphEvent(user_id=item.user_id, target_id=item.id,
                              target="entity" if isinstance(item, Entity) else "relation",
                              event=GraphEventType.ADD if prior is None else GraphEventType.UPDATE, actor="import",
                              reason="imported without history" if prior is None else
                              "the file's row differs from its history", created_at=now,
                              snapshot=item.model_dump(mode="json")))
    return out
