"""Graph rows in the history database (portable SQL over :class:`~remem.storage.base.Database`).

Three tables (migration 14 of :mod:`remem.storage.migrations`, both dialects): ``graph_entities`` (one row per
entity, with the float32 vector of its name), ``graph_relations`` (index columns for the queries + the whole
relation as JSON in ``body``), ``graph_events`` (the graph's history: one row per change, with a snapshot).

Every method takes the open transaction ``tx`` of the caller, so an entity or relation change and its event are
written in one transaction — the caller (:class:`remem.graph.core.Graph`) opens it under the user's write lock.

Why tables and not the vector store for entity names: entities must commit atomically with relations and their
events (one database transaction; the vector store is not transactional with SQLite), must stay out of memory
``list``/``search``, ``remem doctor`` and memory export (all of which read the vector store), and are few per
user (resolution loads the user's entity vectors once per batch and compares them by brute-force cosine, linear
in the user's entities). ``forget_user`` erases the three tables with the rest of the user's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..storage.base import Row, Tx
from .models import Entity, GraphEvent, GraphEventType, Relation

_ENTITY_COLUMNS = "id, user_id, name, key, type, hint, aliases, created_at, updated_at"
_RELATION_COLUMNS = "body"
_EVENT_COLUMNS = "id, user_id, target_id, target, event, actor, reason, created_at, snapshot"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def _vector(raw: Any) -> np.ndarray | None:
    return None if raw is None else np.frombuffer(bytes(raw), dtype=np.float32)


def _entity(row: Row) -> Entity:
    """A stored entity (validated when it was written: built without re-validation, the rows of a user's whole
    graph are read for every resolution batch)."""
    (id_, user_id, name, _key, type_, hint, aliases, created_at, updated_at) = row
    return Entity.model_construct(id=str(id_), user_id=str(user_id), name=str(name), type=type_, hint=hint,
                  aliases=json.loads(aliases), created_at=datetime.fromisoformat(str(created_at)),
                  updated_at=datetime.fromisoformat(str(updated_at)))


def _event(row: Row) -> GraphEvent:
    (id_, user_id, target_id, target, event, actor, reason, created_at, snapshot) = row
    return GraphEvent(id=int(id_), user_id=str(user_id), target_id=str(target_id), target=target,
                      event=GraphEventType(event), actor=str(actor), reason=reason,
                      created_at=datetime.fromisoformat(str(created_at)), snapshot=json.loads(snapshot))


def _in(ids: Sequence[str]) -> str:
    return ", ".join("?" for _ in ids)


class GraphRows:
    """Reads and writes of the graph tables for one user at a time (every query filters on ``user_id``)."""

    # -- entities --------------------------------------------------------------------------------------------
    @staticmethod
    def put_entity(tx: Tx, entity: Entity, key: str, vector: np.ndarray | None) -> None:
        """Insert or replace an entity (``vector`` None keeps the stored one)."""
        exists = tx.fetchone("SELECT 1 FROM graph_entities WHERE id=?", (entity.id,)) is not None
        values = (entity.name, key, entity.type, entity.hint, json.dumps(entity.aliases, ensure_ascii=False),
                  _iso(entity.created_at), _iso(entity.updated_at))
        if exists:
            tx.execute("UPDATE graph_entities SET name=?, key=?, type=?, hint=?, aliases=?, created_at=?, updated_at=?"
                       " WHERE id=? AND user_id=?", (*values, entity.id, entity.user_id))
            if vector is not None:
                tx.execute("UPDATE graph_entities SET vector=? WHERE id=? AND user_id=?",
                           (_blob(vector), entity.id, entity.user_id))
            return
        tx.execute(f"INSERT INTO graph_entities ({_ENTITY_COLUMNS}, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (entity.id, entity.user_id, *values, _blob(vector)))

    @staticmethod
    def drop_entity(tx: Tx, user_id: str, entity_id: str) -> None:
        tx.execute("DELETE FROM graph_entities WHERE id=? AND user_id=?", (entity_id, user_id))

    @staticmethod
    def entities(tx: Tx, user_id: str, ids: Sequence[str] | None = None) -> list[Entity]:
        """The user's entities (all, or these ids), oldest first."""
        if ids is not None:
            if not ids:
                return []
            rows = tx.fetchall(f"SELECT {_ENTITY_COLUMNS} FROM graph_entities WHERE user_id=? AND id IN ({_in(ids)})"
                               " ORDER BY created_at, id", (user_id, *ids))
        else:
            rows = tx.fetchall(f"SELECT {_ENTITY_COLUMNS} FROM graph_entities WHERE user_id=? ORDER BY created_at, id",
                               (user_id,))
        return [_entity(r) for r in rows]

    @staticmethod
    def by_key(tx: Tx, user_id: str, key: str) -> list[Entity]:
        rows = tx.fetchall(f"SELECT {_ENTITY_COLUMNS} FROM graph_entities WHERE user_id=? AND key=?"
                           " ORDER BY created_at, id", (user_id, key))
        return [_entity(r) for r in rows]

    @staticmethod
    def by_keys(tx: Tx, user_id: str, keys: Sequence[str]) -> list[Entity]:
        """The user's entities whose name has one of these :func:`~remem.graph.names.name_key` forms (namesakes)."""
        keys = sorted(set(keys))
        if not keys:
            return []
        rows = tx.fetchall(f"SELECT {_ENTITY_COLUMNS} FROM graph_entities WHERE user_id=? AND key IN ({_in(keys)})"
                           " ORDER BY created_at, id", (user_id, *keys))
        return [_entity(r) for r in rows]

    @staticmethod
    def vectors(tx: Tx, user_id: str) -> tuple[list[Entity], np.ndarray | None]:
        """Every entity of the user with its name vector (rows without a vector are left out)."""
        rows = tx.fetchall(f"SELECT {_ENTITY_COLUMNS}, vector FROM graph_entities WHERE user_id=? AND vector IS NOT NULL"
                           " ORDER BY created_at, id", (user_id,))
        if not rows:
            return [], None
        entities = [_entity(r[:-1]) for r in rows]
        vectors = [_vector(r[-1]) for r in rows]
        return entities, np.stack([v for v in vectors if v is not None])

    @staticmethod
    def entity_ids_of(tx: Tx, ids: Sequence[str]) -> dict[str, str]:
        """entity id -> owner user id, for ids that exist for anyone (import's cross-user check)."""
        if not ids:
            return {}
        rows = tx.fetchall(f"SELECT id, user_id FROM graph_entities WHERE id IN ({_in(ids)})", tuple(ids))
        return {str(r[0]): str(r[1]) for r in rows}

    # -- relations -------------------------------------------------------------------------------------------
    @staticmethod
    def put_relation(tx: Tx, relation: Relation) -> None:
        """Insert or replace a relation."""
        body = relation.model_dump_json()
        values = (relation.subject_id, relation.relation, relation.object_id, _iso(relation.valid_from),
                  _iso(relation.valid_to), _iso(relation.created_at), _iso(relation.expired_at),
                  _iso(relation.deleted_at), json.dumps(relation.source_ids, ensure_ascii=False), body)
        changed = tx.execute("UPDATE graph_relations SET subject_id=?, relation=?, object_id=?, valid_from=?,"
                             " valid_to=?, created_at=?, expired_at=?, deleted_at=?, source_ids=?, body=?"
                             " WHERE id=? AND user_id=?", (*values, relation.id, relation.user_id))
        if not changed:
            tx.execute("INSERT INTO graph_relations (subject_id, relation, object_id, valid_from, valid_to, created_at,"
                       " expired_at, deleted_at, source_ids, body, id, user_id)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, relation.id, relation.user_id))

    @staticmethod
    def relation(tx: Tx, user_id: str, relation_id: str) -> Relation | None:
        row = tx.fetchone("SELECT body FROM graph_relations WHERE id=? AND user_id=?", (relation_id, user_id))
        return Relation.model_validate_json(str(row[0])) if row else None

    @staticmethod
    def relations(tx: Tx, user_id: str, *, touching: Sequence[str] | None = None,
                  deleted: bool | None = False) -> list[Relation]:
        """The user's relations (all, or those whose subject or object is in ``touching``), oldest first.
        ``deleted``: False live only, True deleted only, None both."""
        sql = "SELECT body FROM graph_relations WHERE user_id=?"
        params: list[Any] = [user_id]
        if touching is not None:
            if not touching:
                return []
            sql += f" AND (subject_id IN ({_in(touching)}) OR object_id IN ({_in(touching)}))"
            params += [*touching, *touching]
        if deleted is not None:
            sql += " AND deleted_at IS NULL" if not deleted else " AND deleted_at IS NOT NULL"
        rows = tx.fetchall(sql + " ORDER BY created_at, id", tuple(params))
        return [Relation.model_validate_json(str(r[0])) for r in rows]

    @staticmethod
    def open_relations(tx: Tx, user_id: str, subject_id: str, relation: str) -> list[Relation]:
        """Live relations ``subject --relation--> *`` that remem has not retired."""
        rows = tx.fetchall("SELECT body FROM graph_relations WHERE user_id=? AND subject_id=? AND relation=?"
                           " AND deleted_at IS NULL AND expired_at IS NULL ORDER BY created_at, id",
                           (user_id, subject_id, relation))
        return [Relation.model_validate_json(str(r[0])) for r in rows]

    @staticmethod
    def relation_owners(tx: Tx, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = tx.fetchall(f"SELECT id, user_id FROM graph_relations WHERE id IN ({_in(ids)})", tuple(ids))
        return {str(r[0]): str(r[1]) for r in rows}

    # -- events ----------------------------------------------------------------------------------------------
    @staticmethod
    def record(tx: Tx, events: Iterable[GraphEvent]) -> None:
        rows = [(e.user_id, e.target_id, e.target, e.event.value, e.actor, e.reason, _iso(e.created_at),
                 json.dumps(e.snapshot, ensure_ascii=False)) for e in events]
        if rows:
            tx.executemany("INSERT INTO graph_events (user_id, target_id, target, event, actor, reason, created_at,"
                           " snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @staticmethod
    def events(tx: Tx, user_id: str, target_id: str | None = None) -> list[GraphEvent]:
        """The user's graph events (of one entity/relation, or all), oldest first."""
        if target_id is None:
            rows = tx.fetchall(f"SELECT {_EVENT_COLUMNS} FROM graph_events WHERE user_id=? ORDER BY id", (user_id,))
        else:
            rows = tx.fetchall(f"SELECT {_EVENT_COLUMNS} FROM graph_events WHERE user_id=? AND target_id=? ORDER BY id",
                               (user_id, target_id))
        return [_event(r) for r in rows]

    @staticmethod
    def users(tx: Tx) -> list[str]:
        rows = tx.fetchall("SELECT DISTINCT user_id FROM graph_entities ORDER BY user_id")
        return [str(r[0]) for r in rows]
