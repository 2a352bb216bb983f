"""Triage: decide, without an LM call, what the new facts of one add need — so only conflicts reach the agent.

Each extracted fact, in order, is compared with the user's live facts (and with the facts of the same add that
were already sent to the agent):

- **NOOP** — an exact duplicate (same normalised text as a live fact) or a near duplicate (dense cosine ≥
  ``near_duplicate``, 0.92 by default: the writer's own check) of a live fact **that adds no word to it**
  (:mod:`remem.dedupe`: "not allergic", "40 mg", "room 102" are changes, not duplicates). No LM call.
- **ADD** — no live fact, and no fact of this add bound for the agent, has cosine ≥ ``floor``: nothing the
  user has could be a duplicate, an update or a contradiction of it. Written at once through the one write
  path (``writer.insert(..., dedupe="kind", near_duplicate=...)``), so a race with another write still ends in
  one live copy. No LM call.
- **AGENT** — everything else (a plausible conflict): all such facts of one add go to the ``UpdateMemory``
  agent together, in one run.

The floor is measured, not guessed: ``remem bench pipeline --replay locomo-observations`` reports, for the
configured embedder, how many hand-labelled conflicts (a later LoCoMo observation restating, refining or
superseding an earlier one) a floor keeps and how many facts it sends to the agent. Default 0.7 for the
packaged ``local`` MiniLM embedder (see the README's *LLM write path* section for the table); other embedders
have other cosine scales: measure yours, then set ``Pipeline(conflict_floor=…)`` or ``REMEM_CONFLICT_FLOOR``.
Callers hold the user's ``maintain`` lock (:meth:`remem.pipeline.ingest.Pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from ..dedupe import adds_nothing
from ..models import EventType, MemoryEvent, MemoryRecord, content_hash
from ..parts import MemoryParts
from ..stores import MemoryFilter
from ..stores.base import StoreQuery
from .extract import Fact


class Route(StrEnum):
    NOOP = "noop"
    ADD = "add"
    AGENT = "agent"


@dataclass
class Decision:
    """What triage decided for one fact: the route, the best cosine it saw, the event of a NOOP/ADD."""

    fact: Fact
    route: Route
    similarity: float
    event: MemoryEvent | None = None


@dataclass
class TriageResult:
    decisions: list[Decision] = field(default_factory=list)

    @property
    def events(self) -> list[MemoryEvent]:
        return [d.event for d in self.decisions if d.event is not None]

    @property
    def conflicts(self) -> list[Fact]:
        """The facts for the agent, in input order."""
        return [d.fact for d in self.decisions if d.route is Route.AGENT]


def fact_record(user_id: str, text: str, fact: Fact | None, *, categories: list[str] | None = None,
                session_id: str | None, metadata: dict[str, Any]) -> MemoryRecord:
    """The ``fact`` memory for ``text``, with the categories, date and sources of the fact it comes from."""
    return MemoryRecord(
        user_id=user_id, text=text, kind="fact",
        categories=categories or (fact.categories if fact else []),
        observed_at=fact.observed_at if fact else None,
        source_ids=fact.source_ids if fact else [], session_id=session_id, metadata=dict(metadata),
    )


def find_fact_duplicate(parts: MemoryParts, user_id: str, text: str) -> MemoryRecord | None:
    """A live *fact* of this user with the same normalised text (episodes do not count)."""
    flt = MemoryFilter(user_id=user_id, hash=content_hash(text), kinds=["fact"])
    found = parts.store.scroll(flt, offset=0, limit=1)
    return found[0] if found else None


def triage(
    parts: MemoryParts, user_id: str, facts: list[Fact], *, floor: float, near_duplicate: float,
    session_id: str | None, actor: str, metadata: dict[str, Any],
) -> TriageResult:
    """Route each fact (see the module docstring), writing the ADDs; returns the decisions in input order."""
    out = TriageResult()
    if not facts:
        return out
    vectors = parts.embedder.embed([f.text for f in facts])
    agent_rows: list[int] = []
    for i, fact in enumerate(facts):
        twin = find_fact_duplicate(parts, user_id, fact.text)
        if twin is not None:
            out.decisions.append(Decision(fact, Route.NOOP, 1.0, MemoryEvent(
                event=EventType.NOOP, memory_id=twin.id, text=fact.text, reason="duplicate of an existing memory")))
            continue
        hits = parts.store.query(StoreQuery(filter=MemoryFilter(user_id=user_id, kinds=["fact"]), limit=5,
                                            dense=vectors[i]))
        best = float(hits[0].score) if hits else -1.0
        same = next((h for h in hits if h.score >= near_duplicate and adds_nothing(fact.text, h.record.text)), None)
        if same is not None:
            out.decisions.append(Decision(fact, Route.NOOP, float(same.score), MemoryEvent(
                event=EventType.NOOP, memory_id=same.record.id, text=fact.text,
                reason="duplicate of an existing memory")))
            continue
        pending = float(np.max(vectors[agent_rows] @ vectors[i])) if agent_rows else -1.0
        if max(best, pending) >= floor:
            agent_rows.append(i)
            out.decisions.append(Decision(fact, Route.AGENT, max(best, pending)))
            continue
        record = fact_record(user_id, fact.text, fact, session_id=session_id, metadata=metadata)
        (event,) = parts.writer.insert([record], actor=actor, dedupe="kind", near_duplicate=near_duplicate)
        out.decisions.append(Decision(fact, Route.ADD, best, event))
    return out
