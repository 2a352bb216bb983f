"""The data model of graph memory: entities, time-aware relations, their history, and what retrieval returns.

Times follow :mod:`remem.models`: aware UTC instants (naive input is UTC). A relation carries two clocks:

- **world time** — ``valid_from``/``valid_to``: when the relation held in the user's world (``None``: unknown,
  i.e. open on that side). The interval is half-open: it holds at ``t`` when ``valid_from <= t < valid_to``.
- **system time** — ``created_at``/``expired_at``: when remem learned it and when remem retired it (a
  contradiction or a person closed it). A closed relation is kept, so "where did Alice live in 2023?" still has
  an answer; ``deleted_at`` marks one that was wrong (hidden everywhere, restorable, kept in history).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..bounds import MAX_LABEL_CHARS, check_datetime, check_label, check_metadata, check_str
from ..models import as_utc, new_id, utcnow

EntityType = Literal["person", "place", "organisation", "thing", "event"]
ENTITY_TYPES: tuple[EntityType, ...] = ("person", "place", "organisation", "thing", "event")

#: A relation name: a short snake_case verb phrase (``sister_of``, ``lives_in``, ``works_at``, ``likes``).
RELATION_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){0,5}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: Most source ids a relation keeps (the newest ones when more are seen), and longest ``fact`` sentence.
MAX_SOURCE_IDS = 1000
MAX_FACT_CHARS = 2000


def _utc_or_none(value: datetime | None, info: ValidationInfo) -> datetime | None:
    return None if value is None else check_datetime(value, info.field_name or "datetime")


def _text(value: str, info: ValidationInfo) -> str:
    return check_str(value, info.field_name or "text", max_len=MAX_FACT_CHARS)


def _label(value: str, info: ValidationInfo) -> str:
    return check_label(value, info.field_name or "label")


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    return check_metadata(value)


#: Text a caller names an entity by (a name, a hint): no NUL or lone surrogate, at most 200 characters
#: (white space is collapsed and control characters refused by :func:`remem.graph.names.check_name`).
NameText = Annotated[str, Field(max_length=MAX_LABEL_CHARS), AfterValidator(_text)]
#: An id (of an entity, of a source message): a label of 1-200 characters.
IdLabel = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS), AfterValidator(_label)]


class Entity(_Model):
    """A node: a person, place, organisation, thing or event of one user's world.

    ``name`` is the canonical display name ("Maya"); ``aliases`` the other spellings resolution merged into it
    ("maya", "my sister Maya"); ``hint`` a short description that tells same-named entities apart ("Alice's
    sister" vs "Alice's colleague at Acme").
    """

    id: str = Field(default_factory=new_id)
    user_id: str
    name: str
    type: EntityType = "thing"
    hint: str | None = None
    aliases: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return as_utc(v)


class Relation(_Model):
    """A directed, time-aware edge ``subject --relation--> object`` (see the module docstring for the clocks).

    ``source_ids`` are the ids of the messages the relation was learned from (the same ids memories keep), so
    a graph fact counts as evidence like any memory; ``fact`` is the sentence it was extracted with, if any.
    """

    id: str = Field(default_factory=new_id)
    user_id: str
    subject_id: str
    relation: str
    object_id: str
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    expired_at: datetime | None = None
    deleted_at: datetime | None = None
    source_ids: list[str] = Field(default_factory=list)
    fact: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("valid_from", "valid_to", "expired_at", "deleted_at")
    @classmethod
    def _utc_opt(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        return _utc_or_none(v, info)

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return as_utc(v)

    @property
    def is_open(self) -> bool:
        """Not closed (no ``valid_to``, not expired) and not deleted: what remem holds true now."""
        return self.valid_to is None and self.expired_at is None and self.deleted_at is None

    def holds_at(self, when: datetime) -> bool:
        """Whether the relation held at world time ``when`` (deleted relations never held)."""
        t = as_utc(when)
        if self.deleted_at is not None:
            return False
        if self.valid_from is not None and t < self.valid_from:
            return False
        return self.valid_to is None or t < self.valid_to

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        """Whether the relation held at some moment of ``[since, until]`` (either bound ``None``: open)."""
        if self.deleted_at is not None:
            return False
        if until is not None and self.valid_from is not None and self.valid_from > as_utc(until):
            return False
        return not (since is not None and self.valid_to is not None and self.valid_to <= as_utc(since))


class EntityRef(_Model):
    """How a caller names an entity: by ``id`` (an existing one), or by ``name`` (+ ``type``, ``hint``), which
    :mod:`remem.graph.resolve` maps to an existing entity or a new one."""

    name: NameText | None = None
    type: EntityType | None = None
    hint: NameText | None = None
    id: IdLabel | None = None


class GraphEventType(str, Enum):
    ADD = "ADD"  # a new entity or relation
    UPDATE = "UPDATE"  # an entity gained an alias/hint; a relation was seen again (more sources, a start date)
    CLOSE = "CLOSE"  # a relation stopped holding (valid_to) and remem retired it (expired_at)
    DELETE = "DELETE"  # a relation was wrong: hidden, restorable
    RESTORE = "RESTORE"
    MERGE = "MERGE"  # an entity was merged into another (its relations moved there)


class GraphEvent(_Model):
    """One recorded change of one entity or relation, with a snapshot of it after the change (for a MERGE: the
    entity that was merged away, as it was)."""

    id: int | None = None
    user_id: str
    target_id: str
    target: Literal["entity", "relation"]
    event: GraphEventType
    actor: str = "api"
    reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    snapshot: dict[str, Any]

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return as_utc(v)


class GraphFact(_Model):
    """A relation as retrieval returns it: a short dated sentence with its provenance.

    ``hops`` is the distance from the nearest entity the query matched (0: the relation touches it).
    """

    relation: Relation
    subject: Entity
    object: Entity
    text: str
    hops: int = 0
    score: float = 0.0

    @property
    def source_ids(self) -> list[str]:
        return self.relation.source_ids


class Neighbourhood(_Model):
    """What :meth:`remem.graph.Graph.neighbours` returns: the entities the query matched, and the facts within
    ``hops`` of them (nearest first)."""

    matched: list[Entity] = Field(default_factory=list)
    facts: list[GraphFact] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description=(
        "entity id -> how the entity is shown (matched entities and those of the facts): its name, with its hint "
        "(else its type, else a short id) when another entity of the user has the same name — the sentences of "
        "`facts` use these labels"))

    def label(self, entity: Entity) -> str:
        """How ``entity`` is shown ("Maya (Alice's sister)" when the user has two Mayas; else "Maya")."""
        return self.labels.get(entity.id, entity.name)

    @property
    def source_ids(self) -> list[str]:
        return list(dict.fromkeys(s for f in self.facts for s in f.source_ids))

    def text(self) -> str:
        """One line per fact, ``- sentence [sources]`` (what the chat agent and MCP tool see)."""
        if not self.facts:
            return "no graph facts found"
        return "\n".join(f"- {f.text}" + (f" [{', '.join(f.source_ids)}]" if f.source_ids else "")
                         for f in self.facts)


class GraphChange(_Model):
    """The outcome of :meth:`remem.graph.Graph.add`: the relation now holding, the relations it ended (open ones it
    closed, and ended ones whose known end it moved earlier: a single-valued relation holds one object at a time),
    and the events recorded (none when the relation was already known and nothing changed)."""

    relation: Relation
    created: bool
    closed: list[Relation] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list, description="subject and object, as stored")
    events: list[GraphEvent] = Field(default_factory=list)


class GraphView(_Model):
    """A user's whole graph (the web page draws it): entities and relations, closed ones included."""

    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)


class Triplet(_Model):
    """One relation to add (:meth:`remem.graph.Graph.add_many`): what the pipeline's extractor yields, or what a
    host builds without an LM. ``observed_at`` is when it was said (the message time; default now): a single-valued
    relation that replaces another without a start date starts then."""

    subject: EntityRef
    relation: Annotated[str, Field(max_length=256)]
    object: EntityRef
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source_ids: Annotated[list[IdLabel], Field(max_length=MAX_SOURCE_IDS)] = Field(default_factory=list)
    fact: Annotated[str, Field(max_length=MAX_FACT_CHARS), AfterValidator(_text)] | None = None
    observed_at: datetime | None = None
    metadata: Annotated[dict[str, Any], AfterValidator(_metadata)] = Field(default_factory=dict)

    @field_validator("valid_from", "valid_to", "observed_at")
    @classmethod
    def _utc_opt(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        return _utc_or_none(v, info)
