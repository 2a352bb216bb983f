"""How memories are shown to a model: one line per hit, the same in every framework's tools."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import AddResult, EventType, SearchHit

NO_MEMORIES = "No memories found."


def render_hits(hits: Sequence[SearchHit]) -> str:
    """``1. [2024-05-08] text`` lines (the date is ``observed_at``, else ``created_at``; UTC), or
    :data:`NO_MEMORIES`. Ids are left out: a model has no use for UUIDs and the tools take none."""
    if not hits:
        return NO_MEMORIES
    lines = []
    for i, hit in enumerate(hits, start=1):
        when = (hit.record.observed_at or hit.record.created_at).date().isoformat()
        lines.append(f"{i}. [{when}] {hit.record.text}")
    return "\n".join(lines)


def render_saved(result: AddResult) -> str:
    """``Saved.`` or ``Already known.`` (an exact duplicate of a live memory of this user is not stored twice)."""
    events = result.events
    if events and all(e.event is EventType.NOOP for e in events):
        return "Already known."
    return "Saved."
