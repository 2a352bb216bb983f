"""The chat agent's ``search_graph`` tool (added to :class:`remem.pipeline.Agent` when graph memory is on).

A closure over the user id, like the agent's other memory tools: no argument can reach another user. It shares
the agent's per-reply search budget through ``gate`` (which records the call, or returns None when the budget is
spent), and shows dates on the user's calendar (``now``'s time zone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from ..errors import RememError
from ..parts import MemoryParts
from ..timeexpr import parse_date
from .core import Graph


class CallRecord(Protocol):
    """What the agent records of a tool call (:class:`remem.pipeline.ToolCall`)."""

    found: list[str]
    texts: list[str]
    error: str | None


Gate = Callable[[str, dict[str, Any]], CallRecord | None]


def search_graph_tool(parts: MemoryParts, user_id: str, now: datetime, gate: Gate) -> Callable[..., str]:
    """The ``search_graph(entity_or_text, hops, as_of)`` tool bound to ``user_id``."""
    tz = now.tzinfo or UTC
    graph = Graph(parts)

    def search_graph(entity_or_text: str, hops: int = 1, as_of: str = "") -> str:
        """Walk the user's knowledge graph: the relations of the people, places, organisations, things and
        events named in entity_or_text, as dated sentences with their source ids. hops=2 also follows the
        neighbours' relations (e.g. "Alice's sister" → the sister → where she lives). as_of (YYYY-MM-DD, a day
        of the user's calendar) keeps only what held on that day; empty = current and past, dated."""
        args: dict[str, Any] = {"entity_or_text": entity_or_text, "hops": hops, "as_of": as_of}
        when = None
        if as_of and as_of.strip():
            when = parse_date(as_of.strip(), tz, end_of_day=True)
            if when is None:
                return "error: as_of must be a date as YYYY-MM-DD, or empty"
        call = gate("search_graph", args)
        if call is None:
            return "limit reached: no more memory searches; answer with what you have"
        try:
            found = graph.neighbours(entity_or_text, user_id=user_id, hops=hops, as_of=when, limit=20, tz=tz)
        except RememError as exc:
            call.error = str(exc)
            return f"error: {exc}"
        call.found = [f.relation.id for f in found.facts]
        call.texts = [f.text for f in found.facts]
        return found.text()

    return search_graph

