"""The ``/v1/users/{user_id}/graph…`` routes: a user's entities and time-aware relations (:mod:`remem.graph`).

Like every memory route, each one maps the path's user into the caller's tenant, calls one
:class:`remem.graph.Graph` method and maps user ids back (snapshots in events and "not found" messages
included). With graph memory off (no ``REMEM_GRAPH=1``) they answer 503 ``configuration_error``.

Bodies are bounded like the memory routes' (:mod:`remem.server.schemas`): names, hints and ids are labels,
datetimes ISO 8601 only (a number is not a date) whose UTC form exists, ``hops`` and ``limit`` JSON integers,
at most 1000 source ids; what a schema cannot say (``since`` after ``until``, a relation name that is not
snake_case) the library refuses with 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from ..bounds import check_label
from ..errors import NotFoundError
from ..graph import Entity, EntityRef, EntityType, GraphChange, GraphEvent, GraphView, Relation
from ..graph.checks import MAX_ID
from ..graph.models import MAX_FACT_CHARS, MAX_SOURCE_IDS, GraphFact
from ..graph.names import MAX_RELATION
from ..timeexpr import aware, zone
from .deps import MemoryDep, ScopeDep, UserScope
from .routes import ERRORS
from .schemas import Label, QueryBool, Reason, Text, When
from .tenancy import external_user

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["graph"])
GRAPH = "/users/{user_id}/graph"
REL = GRAPH + "/relations/{relation_id}"
ENT = GRAPH + "/entities/{entity_id}"


def _label(value: str) -> str:
    return check_label(value, "value")


#: An entity or relation id (ids are UUIDs: at most 64 characters).
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID), AfterValidator(_label)]
RelationName = Annotated[str, Field(min_length=1, max_length=MAX_RELATION), AfterValidator(_label)]
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraphSearchBody(_Body):
    query: Text = Field(description="An entity id, a name, or free text naming entities ('Alice's sister').")
    hops: Annotated[int, Strict()] = Field(1, ge=1, le=3, description="1: the entities' own relations; 2: also "
                                           "their neighbours'.")
    as_of: When | None = Field(None, description="Only relations that held at this world time.")
    since: When | None = Field(None, description="Only relations that held at some moment after this.")
    until: When | None = Field(None, description="… and before this (not before since).")
    limit: Annotated[int, Strict()] = Field(50, ge=1, le=1000)
    timezone: Annotated[str, Field(max_length=64), AfterValidator(_label)] | None = Field(
        None, description="IANA zone: naive times are wall times there, and sentences show dates on its calendar. "
                          "Default UTC.")


class EntityRefBody(_Body):
    """An entity by ``name`` (+ ``type``, ``hint``), which resolution maps to an existing one or a new one, or by
    ``id``."""

    name: Label | None = None
    type: EntityType | None = None
    hint: Label | None = Field(None, description="What tells it apart from namesakes ('Alice's sister').")
    id: Id | None = None


class RelationBody(_Body):
    subject: Label | EntityRefBody = Field(description="A name, or {name, type, hint} or {id}.")
    relation: RelationName = Field(description="snake_case verb: lives_in, sister_of, works_at, likes …")
    object: Label | EntityRefBody
    valid_from: When | None = None
    valid_to: When | None = None
    source_ids: Annotated[list[Label], Field(max_length=MAX_SOURCE_IDS)] = Field(default_factory=list)
    fact: Annotated[Text, Field(max_length=MAX_FACT_CHARS)] | None = None
    reason: Reason | None = None


class CloseBody(_Body):
    valid_to: When | None = Field(None, description="When it stopped holding (default: now).")
    reason: Reason | None = None


class GraphReasonBody(_Body):
    reason: Reason | None = None


class MergeBody(_Body):
    other_id: Id = Field(description="The entity merged into the path's entity (it is removed).")
    reason: Reason | None = None


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
    labels: dict[str, str] = Field(default_factory=dict, description="entity id -> how it is shown (its hint "
                                   "added when another entity of the user has the same name)")


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


def _ref(value: str | EntityRefBody) -> str | EntityRef:
    return value if isinstance(value, str) else EntityRef(**value.model_dump())


@contextmanager
def _seen_by(scope: UserScope) -> Iterator[None]:
    """"Not found" messages name the user as the caller knows it (``alice``, not ``acme:alice``)."""
    try:
        yield
    except NotFoundError as exc:
        raise NotFoundError(exc.message.replace(f"user {scope.internal}", f"user {scope.user}"),
                            **exc.context) from None


# -- routes --------------------------------------------------------------------------------------------------
@router.get(GRAPH, response_model=GraphView)
def graph_view(scope: ScopeDep, memory: MemoryDep,
               deleted: Annotated[QueryBool, Query(description="Include deleted relations.")] = False) -> GraphView:
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
                               facts=[_fact(scope.tenant, f) for f in found.facts], labels=found.labels)


@router.post(GRAPH + "/relations", response_model=GraphChange)
def add_relation(body: RelationBody, scope: ScopeDep, memory: MemoryDep) -> GraphChange:
    """Add ``subject --relation--> object`` (no LM: entity resolution by its deterministic rules). A
    single-valued relation (``lives_in``, ``works_at`` …) closes the one it replaces."""
    with _seen_by(scope):
        change = memory.graph.add(_ref(body.subject), body.relation, _ref(body.object), user_id=scope.internal,
                                  valid_from=body.valid_from, valid_to=body.valid_to, source_ids=body.source_ids,
                                  fact=body.fact, actor=scope.actor, reason=body.reason)
    return _change(scope.tenant, change)


@router.get(REL, response_model=Relation)
def get_relation(relation_id: PathId, scope: ScopeDep, memory: MemoryDep) -> Relation:
    with _seen_by(scope):
        return _relation(scope.tenant, memory.graph.relation(relation_id, user_id=scope.internal))


@router.post(REL + "/close", response_model=Relation)
def close_relation(relation_id: PathId, scope: ScopeDep, memory: MemoryDep,
                   body: CloseBody | None = None) -> Relation:
    """End a relation that held until now (or ``valid_to``): it stays, dated, and answers questions about the
    past."""
    with _seen_by(scope):
        return _relation(scope.tenant, memory.graph.close(
            relation_id, user_id=scope.internal, valid_to=body.valid_to if body else None, actor=scope.actor,
            reason=body.reason if body else None))


@router.delete(REL, response_model=Relation)
def delete_relation(relation_id: PathId, scope: ScopeDep, memory: MemoryDep,
                    reason: Annotated[str | None, Query(max_length=500)] = None) -> Relation:
    """Delete a wrong relation (hidden everywhere, restorable, kept in history)."""
    with _seen_by(scope):
        return _relation(scope.tenant, memory.graph.delete(relation_id, user_id=scope.internal, actor=scope.actor,
                                                           reason=reason))


@router.post(REL + "/restore", response_model=Relation)
def restore_relation(relation_id: PathId, scope: ScopeDep, memory: MemoryDep,
                     body: GraphReasonBody | None = None) -> Relation:
    with _seen_by(scope):
        return _relation(scope.tenant, memory.graph.restore(relation_id, user_id=scope.internal, actor=scope.actor,
                                                            reason=body.reason if body else None))


@router.get(REL + "/history", response_model=GraphHistoryResponse)
def relation_history(relation_id: PathId, scope: ScopeDep, memory: MemoryDep) -> GraphHistoryResponse:
    """Every change of one relation, oldest first (ADD, UPDATE, CLOSE, DELETE, RESTORE)."""
    with _seen_by(scope):
        events = memory.graph.history(relation_id, user_id=scope.internal)
    return GraphHistoryResponse(events=[_event(scope.tenant, e) for e in events])


@router.get(ENT, response_model=Entity)
def get_entity(entity_id: PathId, scope: ScopeDep, memory: MemoryDep) -> Entity:
    with _seen_by(scope):
        return _entity(scope.tenant, memory.graph.entity(entity_id, user_id=scope.internal))


@router.get(ENT + "/history", response_model=GraphHistoryResponse)
def entity_history(entity_id: PathId, scope: ScopeDep, memory: MemoryDep) -> GraphHistoryResponse:
    with _seen_by(scope):
        events = memory.graph.history(entity_id, user_id=scope.internal)
    return GraphHistoryResponse(events=[_event(scope.tenant, e) for e in events])


@router.post(ENT + "/merge", response_model=Entity)
def merge_entities(entity_id: PathId, body: MergeBody, scope: ScopeDep, memory: MemoryDep) -> Entity:
    """Join ``other_id`` into this entity (its relations move here; its names become aliases; what it then holds
    is reconciled: no relation with itself, no open duplicates, one open object per single-valued relation)."""
    with _seen_by(scope):
        return _entity(scope.tenant, memory.graph.merge(entity_id, body.other_id, user_id=scope.internal,
                                                        actor=scope.actor, reason=body.reason))
