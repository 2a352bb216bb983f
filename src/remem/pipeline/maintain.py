"""Maintenance: reconcile new facts with a user's existing facts through a ``dspy.ReAct`` agent.

The agent sees the similar existing facts of *this* user as small integers (0, 1, 2 …) — never UUIDs, which
models copy badly — and acts through four tools bound by the host to the user (the user id is never a tool
argument): ``add_memory``, ``update_memory``, ``delete_memories``, ``no_op``. Every tool validates its input
and answers an invented id, a malformed argument or an unknown tool with an error *observation* and no side
effect, so the model can correct itself. ``add_memory`` inserts through the one write path with the duplicate
check inside it (atomic under the user's write lock): exact (same normalised text as a live fact) and near (dense
cosine ≥ ``near_duplicate``) duplicates are NOOPs, also when a raw ``add`` of the same fact lands during the run.
Updates keep the memory id and put the old text in history, and are refused if the memory changed since the
agent was shown it or if the new text would duplicate another live fact (exactly or near); deletes are soft (restorable). Only ``kind="fact"`` memories take part: raw turns
(episodes) are never rewritten.

Only conflicts reach the agent (:mod:`remem.pipeline.triage` handles duplicates and unrelated facts without an
LM call), all of one add in one run. The run costs one LM call per step; ReAct's final extraction call is
skipped (its ``summary`` output was never used: the tools' events are the result). Its calls are charged to the
add's LM budget (:mod:`remem.pipeline.budget`); when the budget stops the agent, each new fact it has not acted
on yet — neither written (an ``add_memory``/``update_memory`` whose text comes from it) nor dismissed
(``no_op``) — is added as it is, through the same write path (exact/near duplicates are still NOOPs): a wrong
ADD is visible and fixable, a dropped fact is not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BudgetExceededError, MaintenanceError, RememError
from ..models import EventType, MemoryEvent, MemoryRecord, content_hash
from ..parts import MemoryParts
from ..retrieval.search import search_memories
from ..stores import MemoryFilter
from ..stores.base import StoreQuery
from ..validation import check_categories
from .extract import Fact
from .lm import RETRYABLE, raw_output_of
from .react import GuardedReAct
from .signatures import UpdateMemory
from .triage import fact_record, find_fact_duplicate


@dataclass
class MaintenanceResult:
    """The events of a maintenance run; ``budget_exhausted`` when the LM budget stopped the agent (the facts it
    had not handled were then added as they are)."""

    events: list[MemoryEvent] = field(default_factory=list)
    budget_exhausted: bool = False


class MaintenanceSession:
    """One run of the agent: the integer table, the tools (closures over the user) and the events they cause."""

    def __init__(
        self, parts: MemoryParts, user_id: str, facts: Sequence[Fact], *, session_id: str | None, actor: str,
        metadata: dict[str, Any] | None, similar_per_fact: int, max_existing: int, near_duplicate: float,
    ) -> None:
        self.parts, self.user_id, self.facts = parts, user_id, list(facts)
        self.session_id, self.actor, self.metadata = session_id, actor, dict(metadata or {})
        self.near_duplicate = near_duplicate
        self.events: list[MemoryEvent] = []
        self.table: list[MemoryRecord] = []
        self.deleted: set[int] = set()
        self.handled: set[int] = set()  # indexes of the facts the agent wrote or dismissed
        for fact in self.facts:
            for hit in search_memories(parts, fact.text, user_id=user_id, kinds=["fact"], limit=similar_per_fact):
                if len(self.table) < max_existing and all(r.id != hit.record.id for r in self.table):
                    self.table.append(hit.record)
        self.fact_vectors = parts.embedder.embed([f.text for f in self.facts]) if self.facts else None

    # -- prompt ----------------------------------------------------------------------------------------
    def facts_text(self) -> str:
        lines = []
        for i, f in enumerate(self.facts):
            when = f" ({f.observed_at.date().isoformat()})" if f.observed_at else ""
            lines.append(f"F{i}: {f.text} [{', '.join(f.categories)}]{when}")
        return "\n".join(lines)

    def existing_text(self) -> str:
        if not self.table:
            return "(none: this user has no similar memories yet)"
        return "\n".join(f"{i}: {r.text}" for i, r in enumerate(self.table))

    # -- helpers ---------------------------------------------------------------------------------------
    def _index_of(self, record: MemoryRecord) -> int:
        for i, r in enumerate(self.table):
            if r.id == record.id:
                return i
        self.table.append(record)
        return len(self.table) - 1

    def _lookup(self, value: object) -> MemoryRecord | str:
        """The record behind an integer id, or an error observation."""
        valid = f"valid ids are 0-{len(self.table) - 1}" if self.table else "there are no existing memories"
        if isinstance(value, bool) or not isinstance(value, int):
            return f"error: id must be an integer from the list, got {value!r}; {valid}"
        if value < 0 or value >= len(self.table):
            return f"error: there is no memory {value}; {valid}"
        if value in self.deleted:
            return f"error: memory {value} was already deleted"
        return self.table[value]

    def _source_fact(self, text: str) -> Fact | None:
        """The new fact a text written by the agent comes from (closest by embedding); marks it handled."""
        if not self.facts or self.fact_vectors is None:
            return None
        vector = self.parts.embedder.embed([text])[0]
        index = int(np.argmax(self.fact_vectors @ vector))
        self.handled.add(index)
        return self.facts[index]

    def _near_twin(self, text: str, other_than: str) -> MemoryRecord | None:
        """Another live fact of the user with dense cosine ≥ ``near_duplicate`` to ``text`` (an update must not
        turn one memory into a near copy of another, as an add may not)."""
        vector = self.parts.embedder.embed([text])[0]
        hits = self.parts.store.query(StoreQuery(filter=MemoryFilter(user_id=self.user_id, kinds=["fact"]),
                                                 limit=2, dense=vector))
        return next((h.record for h in hits if h.record.id != other_than and h.score >= self.near_duplicate), None)

    # -- tools -----------------------------------------------------------------------------------------
    def tools(self) -> list[Callable[..., str]]:
        def add_memory(text: str, categories: list[str] | None = None) -> str:
            """Store a new fact about the user (categories: one or more of the fact's categories)."""
            try:
                text = self.parts.text(text)
                cats = check_categories(categories)
            except RememError as exc:
                return f"error: {exc}"
            source = self._source_fact(text)
            record = fact_record(self.user_id, text, source, categories=cats, session_id=self.session_id,
                                 metadata=self.metadata)
            (event,) = self.parts.writer.insert([record], actor=self.actor, dedupe="kind",
                                                near_duplicate=self.near_duplicate)
            self.events.append(event)
            if event.event is EventType.NOOP and event.memory_id is not None:
                twin = self.parts.store.get([event.memory_id], MemoryFilter(user_id=self.user_id))
                where = f"memory {self._index_of(twin[0])}" if twin else "an existing memory"
                return f"not added: {where} already says this (no change)"
            return f"added as memory {self._index_of(record)}"

        def update_memory(id: int, new_text: str) -> str:
            """Rewrite existing memory `id` (an integer from the list) so it states the current truth."""
            found = self._lookup(id)
            if isinstance(found, str):
                return found
            try:
                new_text = self.parts.text(new_text, "new_text")
            except RememError as exc:
                return f"error: {exc}"
            if content_hash(new_text) == found.hash:
                self.events.append(MemoryEvent(event=EventType.NOOP, memory_id=found.id, text=found.text,
                                               reason="update with identical text"))
                return f"memory {id} already says this (no change)"
            twin = find_fact_duplicate(self.parts, self.user_id, new_text) or self._near_twin(new_text, found.id)
            if twin is not None and twin.id != found.id:
                return (f"error: memory {self._index_of(twin)} already says this; delete memory {id} instead "
                        "if it is obsolete")
            source = self._source_fact(new_text)
            try:
                updated = self.parts.writer.update(
                    self.user_id, found.id, text=new_text, actor=self.actor, reason="maintenance",
                    observed_at=source.observed_at if source else None,
                    source_ids=source.source_ids if source else None, expected_text=found.text,
                    refuse_duplicate="kind",
                )
            except RememError as exc:
                return f"error: {exc} (nothing was changed)"
            self.table[id] = updated
            self.events.append(MemoryEvent(event=EventType.UPDATE, memory_id=found.id, text=updated.text,
                                           old_text=found.text))
            return f"updated memory {id}"

        def delete_memories(ids: list[int]) -> str:
            """Soft-delete existing memories that are now false or retracted (integers from the list)."""
            if not ids:
                return "error: give at least one id from the list"
            records = []
            for value in dict.fromkeys(ids):
                found = self._lookup(value)
                if isinstance(found, str):
                    return found + " (nothing was deleted)"
                records.append((value, found))
            for value, record in records:
                try:
                    self.parts.writer.delete(self.user_id, record.id, actor=self.actor, reason="maintenance")
                except RememError as exc:
                    return f"error: memory {value}: {exc}"
                self.deleted.add(value)
                self.events.append(MemoryEvent(event=EventType.DELETE, memory_id=record.id, old_text=record.text))
            return f"deleted memories {', '.join(str(v) for v, _ in records)}"

        def no_op() -> str:
            """Change nothing (the new facts are already known or not worth storing)."""
            self.handled.update(range(len(self.facts)))
            self.events.append(MemoryEvent(event=EventType.NOOP, reason="no change needed"))
            return "ok: nothing changed"

        return [add_memory, update_memory, delete_memories, no_op]

    def result(self) -> list[MemoryEvent]:
        if not self.events:
            return [MemoryEvent(event=EventType.NOOP, text=f.text, reason="agent finished without action")
                    for f in self.facts]
        return self.events

    def add_unhandled(self, handled: set[int]) -> list[MemoryEvent]:
        """The budget rule: add every fact not in ``handled`` as it is (duplicates are still NOOPs)."""
        records = [fact_record(self.user_id, f.text, f, session_id=self.session_id, metadata=self.metadata)
                   for i, f in enumerate(self.facts) if i not in handled]
        if not records:
            return []
        events = self.parts.writer.insert(records, actor=self.actor, dedupe="kind", near_duplicate=self.near_duplicate)
        return [e.model_copy(update={"reason": e.reason or "LM budget spent: added without the agent"})
                for e in events]


class Maintainer:
    """The ``UpdateMemory`` ReAct agent with bounded iterations and retries. Call inside :func:`lm.meter` (and
    :func:`budget.spending` for a bounded cost). ``summarize=True`` restores ReAct's final extraction call."""

    def __init__(
        self, parts: MemoryParts, *, instructions: str | None = None, retries: int = 2,
        max_iters: int | None = None, similar_per_fact: int = 5, max_existing: int = 20, near_duplicate: float = 0.92,
        summarize: bool = False,
    ) -> None:
        self.parts = parts
        self.signature = UpdateMemory.with_instructions(inspect.cleandoc(instructions or UpdateMemory.instructions))
        self.retries, self.max_iters, self.summarize = retries, max_iters, summarize
        self.similar_per_fact, self.max_existing, self.near_duplicate = similar_per_fact, max_existing, near_duplicate

    def __call__(
        self, user_id: str, facts: Sequence[Fact], *, session_id: str | None = None, actor: str = "pipeline",
        metadata: dict[str, Any] | None = None,
    ) -> MaintenanceResult:
        if not facts:
            return MaintenanceResult()
        done: list[MemoryEvent] = []
        handled: set[int] = set()
        last: BaseException | None = None
        attempts = self.retries + 1
        for _ in range(attempts):
            session = MaintenanceSession(
                self.parts, user_id, facts, session_id=session_id, actor=actor, metadata=metadata,
                similar_per_fact=self.similar_per_fact, max_existing=self.max_existing,
                near_duplicate=self.near_duplicate,
            )
            iters = self.max_iters or min(6 + 2 * len(facts), 16)
            agent = GuardedReAct(self.signature, tools=session.tools(), max_iters=iters, summarize=self.summarize)
            try:
                agent(new_facts=session.facts_text(), existing_memories=session.existing_text())
            except BudgetExceededError:
                handled |= session.handled
                return MaintenanceResult(done + session.events + session.add_unhandled(handled), True)
            except RETRYABLE as exc:
                done.extend(session.events)  # changes made before the failure did happen: report them
                handled |= session.handled
                last = exc
                continue
            return MaintenanceResult(done + session.result())
        assert last is not None
        raise MaintenanceError(
            f"memory maintenance failed after {attempts} attempts ({type(last).__name__})",
            raw_output=raw_output_of(last), attempts=attempts, events=[e.model_dump(mode="json") for e in done],
        ) from last
