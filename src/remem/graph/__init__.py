"""Graph memory: entities and the time-aware relations between them, walked for multi-hop recall.

Flat factoids lose the links between things: "Alice's sister is Maya" and "Maya moved to Lisbon in March" are
two memories, and "where does Alice's sister live now?" needs both. Graph memory keeps the entities of a
user's world and the relations between them, with the time each held, in the history database (SQLite tables in
the embedded default, Postgres tables with ``REMEM_DATABASE_URL``), so an agent can walk from one to the other.

Off by default; on with ``Memory(graph=True)`` or ``REMEM_GRAPH=1``. Then the LLM pipeline also extracts
triplets (:mod:`.extract`), the chat agent gets a ``search_graph`` tool, ``Memory.search(..., graph=True)``
fuses graph facts with the vector hits (:mod:`.fusion`), and ``memory.graph`` (:class:`Graph`) lets a host
build and read a graph without an LM. Modules: :mod:`.models`, :mod:`.names`, :mod:`.storage`,
:mod:`.resolve` (entity resolution), :mod:`.checks` (input checks), :mod:`.core` (writes),
:mod:`.timeline` (the time rules), :mod:`.retrieval`,
:mod:`.fusion`, :mod:`.aio` (``AsyncMemory.graph``), :mod:`.extract`, :mod:`.signatures` (DSPy), :mod:`.tools` (the chat agent's tool),
:mod:`.transfer` (export/import lines).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ..parts import parts_of
from .core import Graph
from .models import (
    ENTITY_TYPES,
    Entity,
    EntityRef,
    EntityType,
    GraphChange,
    GraphEvent,
    GraphEventType,
    GraphFact,
    GraphView,
    Neighbourhood,
    Relation,
    Triplet,
)
from .resolve import Thresholds
from .timeline import SINGLE_VALUED, SYMMETRIC

OFF = "graph memory is off: open the memory with Memory(graph=True) or set REMEM_GRAPH=1"


def graph_of(memory: Any) -> Graph:
    """The :class:`Graph` of a Memory (or of its parts); ``ConfigurationError`` when graph memory is off."""
    parts = parts_of(memory)
    if not parts.settings.graph:
        raise ConfigurationError(OFF)
    return Graph(parts)


__all__ = [
    "ENTITY_TYPES",
    "OFF",
    "SINGLE_VALUED",
    "SYMMETRIC",
    "Entity",
    "EntityRef",
    "EntityType",
    "Graph",
    "GraphChange",
    "GraphEvent",
    "GraphEventType",
    "GraphFact",
    "GraphView",
    "Neighbourhood",
    "Relation",
    "Thresholds",
    "Triplet",
    "graph_of",
]
