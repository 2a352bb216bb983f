"""The ``/v1/users/{user_id}/graph…`` routes: a user's entities and time-aware relations (:mod:`remem.graph`).

Like every memory route, each one maps the path's user into the caller's tenant, calls one
:class:`remem.graph.Graph` method and maps user ids back (snapshots in events included). With graph memory off
(no ``REMEM_GRAPH=1``) they answer 503 ``configuration_error``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ..graph import Entity, EntityRef, GraphChange, GraphEvent, GraphView, Relation
from ..graph.models import GraphFact
from ..timeexpr import aware, zone
from .deps import MemoryDep, ScopeDep
from .routes import ERRORS
from .tenancy import external_user

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["graph"])
GRAPH = "/users/{user_id}/graph"
REL = GRAPH + "/relations/{relation_id}"
ENT = GRAPH + "/entities/{entity_id}"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraphSearchBody(_Body):
    query: str = Field(description="An entity id, a name, or free text naming entities ('Alice's sister').")
    hops: int = Field(1, ge=1, le=3, description="1: the entities' own relations; 2: also their neighbours'.")
    as_of: datetime | None = Field(None, description="Only relations that held at this world time.")
    since: datetime | None = Field(None, description="Only relations that held at some moment after this.")
    until: datetime | None = Field(None, description="… and before this.")
    limit: int = Field(50, ge=1, le=1000)
    timezone: str | None = Field(None, description="IANA zone: naive times are wall times there, and sentences "
                                                   "show dates on its calendar. Default UTC.")


class RelationBody(_Body):
    subject: str | EntityRef = Field(description="A name, or {name, type, hint} or {id}.")
    relation: str = Field(description="snake_case verb: lives_in, sister_of, works_at, likes …")
    object: str | EntityRef
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source_ids: list[str] = Field(default_factory=list)
    fact: str | None = Field(None, max_length=2000)
    reason: str | None = Field(None, max_length=500)


class CloseBody(_Body):
    valid_to: datetime | None = Field(None, description="When it stopped holding (default: now).")
    reason: str | None = Field(None, max_length=500)


class GraphReasonBody(_Body):
    reason: str | None = Field(None, max_length=500)


class MergeBody(_Body):
    other_id: str = Field(description="The entity merged into the path's entity (it is removed).")
    reason: str | None = Field(None, max_length=500)


class GraphFactOut(BaseModel):
    text: str
    hops: int
    score: float
    source_ids: list[str]
    relation: Relation
    subject: Entity
    object: Entity


class GraphSearchResponse(BaseModel):
    matched: list[Entity]
    facts: list[GraphFactOut]


class GraphHistoryResponse(BaseModel):
    events: list[GraphEvent]


# -- tenant mapping ------------------------------------------------------------------------------------------
def _entity(tenant: str, e: Entity) -> Entity:
    return e.model_copy(update={"user_id": external_user(tenant, e.user_id)})


def _relation(tenant: str, r: Relation) -> Relation:
    return r.model_copy(update={"user_id": external_user(tenant, r.user_id)})


def _event(tenant: str, e: GraphEvent) -> GraphEvent:
    snapshot: dict[str, Any] = {**e.snapshot}
    if isinstance(snapshot.get("user_id"), str):
        snapshot["user_id"] = external_user(tenant, snapshot["user_id"])
    return e.model_copy(update={"user_id": external_user(tenant, e.user_id), "snapshot": snapshot})


def _fact(tenant: str, f: GraphFact) -> GraphFactOut:
    return GraphFactOut(text=f.text, hops=f.hops, score=f.score, source_ids=f.source_ids,
                        relation=_relation(tenant, f.relation), subject=_entity(tenant, f.subject),
                        object=_entity(tenant, f.object))


def _change(tenant: str, c: GraphChange) -> GraphChange:
    return c.model_copy(update={"relation": _relation(tenant, c.relation),
                                "closed": [_relation(tenant, r) for r in c.closed],
                                "entities": [_entity(tenant, e) for e in c.entities],
                                "events": [_event(tenant, e) for e in c.events]})


def _when(value: datetime | None, tz: tzinfo) -> datetime | None:
    return aware(value, tz) if value is not None else None


# -- routes --------------------------------------------------------------------------------------------------
@router.get(GRAPH, response_model=GraphView)
def graph_view(scope: ScopeDep, memory: MemoryDep,
               deleted: Annotated[bool, Query(description="Include deleted relations.")] = False) -> GraphView:
    """Every entity and relation of the user (closed relations included): what the web page draws."""
    view = memory.graph.view(user_id=scope.internal, deleted=deleted)
    return GraphView(entities=[_entity(scope.tenant, e) for e in view.entities],
                     relations=[_relation(scope.tenant, r) for r in view.relations])


@router.post(GRAPH + "/search", response_model=GraphSearchResponse)
def graph_search(body: GraphSearchBody, scope: ScopeDep, memory: MemoryDep) -> GraphSearchResponse:
    """The relations within ``hops`` of the entities the query names, as dated sentences with source ids."""
    tz = zone(body.timezone) if body.timezone else UTC
    found = memory.graph.neighbours(body.query, user_id=scope.internal, hops=body.hops, as_of=_when(body.as_of, tz),
                                    since=_when(body.since, tz), until=_when(body.until, tz), limit=body.limit, tz=tz)
    return GraphSearchResponse(matched=[_entity(scope.tenant, e) for e in found.matched],
                               facts=[_fact(scope.tenant, f) for f in found.facts])


@router.post(GRAPH + "/relations", response_model=GraphChange)
def add_relation(body: RelationBody, scope: ScopeDep, memory: MemoryDep) -> GraphChange:
    """Add ``subject --relation--> object`` (no LM: entity resolution by its deterministic rules). A
    single-valued relation (``lives_in``, ``works_at`` …) closes the one it replaces."""
    change = memory.graph.add(body.subject, body.relation, body.object, user_id=scope.internal,
                              valid_from=body.valid_from, valid_to=body.valid_to, source_ids=body.source_ids,
                              fact=body.fact, actor=scope.actor, reason=body.reason)
    return _change(scope.tenant, change)


@router.get(REL, response_model=Relation)
def get_relation(relation_id: str, scope: ScopeDep, memory: MemoryDep) -> Relation:
    return _relation(scope.tenant, memory.graph.relation(relation_id, user_id=scope.internal))


@router.post(REL + "/close", response_model=Relation)
def close_relation(relation_id: str, scope: ScopeDep, memory: MemoryDep, body: CloseBody | None = None) -> Relation:
    """End a relation that held until now (or ``valid_to``): it stays, dated, and answers questions about the
    past."""
    return _relation(scope.tenant, memory.graph.close(
        relation_id, user_id=scope.internal, valid_to=body.valid_to if body else None, actor=scope.actor,
        reason=body.reason if body else None))


@router.delete(REL, response_model=Relation)
def delete_relation(relation_id: str, scope: ScopeDep, memory: MemoryDep,
                    reason: Annotated[str | None, Query(max_length=500)] = None) -> Relation:
    """Delete a wrong relation (hidden everywhere, restorable, kept in history)."""
    return _relation(scope.tenant, memory.graph.delete(relation_id, user_id=scope.internal, actor=scope.actor,
                                                       reason=reason))


@router.post(REL + "/restore", response_model=Relation)
def restore_relation(relation_id: str, scope: ScopeDep, memory: MemoryDep, body: GraphReasonBody | None = None) -> Relation:
    return _relation(scope.tenant, memory.graph.restore(relation_id, user_id=scope.internal, actor=scope.actor,
                                                        reason=body.reason if body else None))


@router.get(REL + "/history", response_model=GraphHistoryResponse)
def relation_history(relation_id: str, scope: ScopeDep, memory: MemoryDep) -> GraphHistoryResponse:
    """Every change of one relation, oldest first (ADD, UPDATE, CLOSE, DELETE, RESTORE)."""
    events = memory.graph.history(relation_id, user_id=scope.internal)
    return GraphHistoryResponse(events=[_event(scope.tenant, e) for e in events])


@router.get(ENT, response_model=Entity)
def get_entity(entity_id: str, scope: ScopeDep, memory: MemoryDep) -> Entity:
    return _entity(scope.tenant, memory.graph.entity(entity_id, user_id=scope.internal))


@router.get(ENT + "/history", response_model=GraphHistoryResponse)
def entity_history(entity_id: str, scope: ScopeDep, memory: MemoryDep) -> GraphHistoryResponse:
    events = memory.graph.history(entity_id, user_id=scope.internal)
    return GraphHistoryResponse(events=[_event(scope.tenant, e) for e in events])


@router.post(ENT + "/merge", response_model=Entity)
def merge_entities(entity_id: str, body: MergeBody, scope: ScopeDep, memory: MemoryDep) -> Entity:
    """Join ``other_id`` into this entity (its relations move here; its names become aliases)."""
    return _entity(scope.tenant, memory.graph.merge(entity_id, body.other_id, user_id=scope.internal,
                                                    actor=scope.actor, reason=body.reason))
