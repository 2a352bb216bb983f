"""The pipeline behind ``Memory.add(..., infer=True)``: queue durably, store raw turns, extract, triage, maintain.

Order matters and is the whole point:

1. the job (turns, context, options) is written to the pending queue, claimed by its submitter;
2. the turns are stored as ``episode`` memories through the raw path (every turn gets an id), so nothing the
   user said is ever unrecoverable, whatever the LM does next (reads see them at once);
3. extraction (``MemoryExtract``, one LM call) → facts with source ids and resolved dates;
4. triage (:mod:`remem.pipeline.triage`, no LM call): exact/near duplicates are NOOPs, facts unlike anything
   the user has are ADDed; only plausible conflicts go on;
5. maintenance (``UpdateMemory`` ReAct, :mod:`remem.pipeline.maintain`) → ADD / UPDATE / DELETE / NOOP for the
   conflicts of this add, in one run;
6. the job is marked done. A failure after bounded retries raises ``ExtractionError``/``MaintenanceError``
   (with the raw output and the job id) and leaves the job pending for :meth:`Pipeline.reprocess` and workers.

Cost is bounded (:mod:`remem.pipeline.budget`): every LM call of one add is charged to its budget
(``max_calls``, ``max_tokens``). When the budget stops the agent, the facts it has not handled are added as they
are; when it stops extraction (only possible with a budget below the extraction's retries), the turn stays in
the pending queue (:class:`~remem.errors.BudgetExceededError`). Usage comes back with every result and is added
to the user's totals (``remem stats``).

With ``background=True`` steps 3–6 run in a worker (:mod:`remem.pipeline.worker`: a thread of this process, or
``remem worker``): the call returns after step 2. A job is claimed by one worker at a time (the queue's claim,
atomic across processes); :class:`JobBusyError` says another one holds it.

Maintenance runs of one user are serialised (two concurrent runs could both add the same fact) by the user's
``maintain`` lock (:class:`remem.storage.base.Locks`: across processes on Postgres); each write of a run goes
through the one write path (:class:`remem.writer.Writer`), so a raw ``add`` landing meanwhile is deduplicated
against it, atomically.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import (
    BudgetExceededError,
    ExtractionError,
    LLMError,
    MaintenanceError,
    RememError,
    ValidationError,
)
from ..models import AddResult, LLMUsage, MemoryEvent, MemoryRecord, Message, utcnow
from ..parts import HasParts, MemoryParts, parts_of
from ..reads import list_page
from ..storage.base import Job, JobPayload
from ..storage.usage import record_usage
from .budget import LMBudget, spending
from .extract import Extractor, Fact
from .lm import LMSpec, meter, resolve_lm
from .maintain import Maintainer
from .structured import OutputMode, adapter_for
from .triage import triage
from .worker import BackgroundWorker, JobOutcome, Worker, worker_id

__all__ = ["InferResult", "JobBusyError", "JobOutcome", "Pipeline", "ReprocessReport"]


class InferResult(AddResult):
    """``add(infer=True)``: ``events`` are the fact changes; ``episodes`` the raw turns stored first.

    ``to_agent``: how many facts triage sent to the maintenance agent (0: no agent run); ``budget_exhausted``:
    the LM budget stopped the agent (its unhandled facts were added as they are)."""

    episodes: list[MemoryEvent] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)
    to_agent: int = 0
    budget_exhausted: bool = False


class ReprocessReport(BaseModel):
    outcomes: list[JobOutcome] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


class JobBusyError(RememError):
    """The job is being processed right now (claimed by another worker or thread)."""

    code = "job_busy"


class Pipeline:
    """Extraction + triage + maintenance for one :class:`~remem.Memory` (or its parts); attaches itself as
    ``memory.pipeline``.

    ``conflict_floor`` (default ``REMEM_CONFLICT_FLOOR``, 0.7): the cosine below which a fact skips the agent;
    ``triage=False`` sends every fact to the agent (the control flow before triage existed, kept for
    ``remem bench pipeline``); ``budget``: LM calls/tokens per add (default ``REMEM_LM_MAX_CALLS``/
    ``REMEM_LM_MAX_TOKENS``; ``None`` = unbounded); ``output``: ``auto``/``json``/``chat`` (see
    :mod:`remem.pipeline.structured`); ``summarize=True`` restores ReAct's final extraction call in maintenance.
    """

    def __init__(
        self,
        memory: HasParts | MemoryParts,
        lm: LMSpec,
        *,
        api_base: str | None = None,
        categories: Sequence[str] | None = None,
        extract_instructions: str | None = None,
        maintain_instructions: str | None = None,
        retries: int = 2,
        near_duplicate: float = 0.92,
        context_turns: int = 6,
        conflict_floor: float | None = None,
        triage: bool = True,
        budget: LMBudget | Literal["default"] | None = "default",
        output: OutputMode | None = None,
        summarize: bool = False,
        lease_seconds: float = 900.0,
    ) -> None:
        self.parts = parts_of(memory)
        settings = self.parts.settings
        self.lm = resolve_lm(lm, api_base=api_base)
        self.adapter = adapter_for(self.lm, output or settings.lm_output)
        self.queue = self.parts.queue
        self.extractor = Extractor(instructions=extract_instructions, categories=categories, retries=retries,
                                   max_chars=settings.max_text_chars)
        self.maintainer = Maintainer(self.parts, instructions=maintain_instructions, retries=retries,
                                     near_duplicate=near_duplicate, summarize=summarize)
        self.near_duplicate = near_duplicate
        self.conflict_floor = settings.conflict_floor if conflict_floor is None else conflict_floor
        self.triage = triage
        if budget is not None and budget != "default" and not isinstance(budget, LMBudget):
            raise ValidationError(f"budget must be an LMBudget or None, got {budget!r}", field="budget")
        self.budget: LMBudget | None = (
            LMBudget(settings.lm_max_calls, settings.lm_max_tokens) if budget == "default" else budget)
        self.context_turns = context_turns
        self.lease_seconds = lease_seconds
        self.owner = worker_id("pipeline")
        self._guard = threading.Lock()
        self._background: BackgroundWorker | None = None
        if hasattr(memory, "pipeline"):
            previous = memory.pipeline
            if isinstance(previous, Pipeline) and previous is not self:
                previous.close()  # one pipeline per Memory: the old one's worker thread must not go on with its LM
            memory.pipeline = self

    # -- steps -------------------------------------------------------------------------------------------
    def _recent_context(self, user_id: str, session_id: str | None) -> list[Message]:
        if self.context_turns <= 0:
            return []
        page = list_page(self.parts.store, user_id=user_id, kinds=["episode"], limit=self.context_turns)
        turns = [r for r in page.items if session_id is None or r.session_id == session_id]
        return [
            Message(role=r.role if r.role in ("user", "assistant", "system", "tool") else "user",  # type: ignore[arg-type]
                    content=r.text, name=r.speaker, timestamp=r.observed_at or r.created_at,
                    id=r.source_ids[0] if r.source_ids else r.id)
            for r in reversed(turns)
        ]

    def _enqueue(
        self, messages: Sequence[Message], *, user_id: str, metadata: dict[str, Any] | None,
        categories: Sequence[str] | None, session_id: str | None, actor: str, context: Sequence[Message] | None,
        owner: str,
    ) -> tuple[str, list[MemoryEvent]]:
        """Queue the turns (claimed by ``owner``) and store them as episodes; the claim is still held."""
        now = utcnow()
        msgs = [m.model_copy(update={"id": m.id or f"m-{uuid.uuid4().hex[:12]}", "timestamp": m.timestamp or now})
                for m in messages]
        payload = JobPayload(
            messages=msgs,
            context=list(context) if context is not None else self._recent_context(user_id, session_id),
            metadata=dict(metadata or {}), categories=list(categories or []), session_id=session_id, actor=actor,
        )
        job_id = self.queue.enqueue(user_id, payload, claimed_by=owner, lease_seconds=self.lease_seconds)
        try:
            return job_id, self._store_episodes(job_id, user_id, payload)
        except BaseException:
            self.queue.release(job_id, owner)  # a worker stores the episodes (stage "new") and goes on
            raise

    def submit(
        self, messages: Sequence[Message], *, user_id: str, metadata: dict[str, Any] | None = None,
        categories: Sequence[str] | None = None, session_id: str | None = None, actor: str = "api",
        context: Sequence[Message] | None = None, background: bool = False,
    ) -> tuple[str, list[MemoryEvent]]:
        """Queue the turns durably and store them as episodes; returns (job id, episode events). The job is then
        free for any worker; ``background=True`` also wakes this process's worker thread (starting it)."""
        owner = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        job_id, episodes = self._enqueue(messages, user_id=user_id, metadata=metadata, categories=categories,
                                         session_id=session_id, actor=actor, context=context, owner=owner)
        self.queue.release(job_id, owner)
        if background:
            self.process_in_background(job_id)
        return job_id, episodes

    def _store_episodes(self, job_id: str, user_id: str, payload: JobPayload) -> list[MemoryEvent]:
        records = [
            MemoryRecord(user_id=user_id, text=m.content.strip(), kind="episode", categories=payload.categories,
                         observed_at=m.timestamp, source_ids=[m.id] if m.id else [], role=m.role, speaker=m.name,
                         session_id=payload.session_id, metadata=payload.metadata)
            for m in payload.messages
        ]
        events = self.parts.writer.insert(records, actor=payload.actor)
        self.queue.mark_stored(job_id)
        return events

    def process(self, job_id: str) -> InferResult:
        """Run extraction + maintenance for a queued job (stores its episodes first if a crash skipped that).
        Raises :class:`JobBusyError` if another worker holds the job."""
        job = self.queue.get(job_id)
        if job is None:
            raise RememError(f"no queued job {job_id}", job_id=job_id)
        if job.status == "done":
            return InferResult(job_id=job.id)
        owner = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        claimed = self.queue.claim(owner, self.lease_seconds, job_id)
        if claimed is None:
            again = self.queue.get(job_id)
            if again is not None and again.status == "done":
                return InferResult(job_id=job_id)
            raise JobBusyError(f"job {job_id} is being processed by {again.claimed_by if again else 'a worker'}",
                               job_id=job_id)
        return self.run_claimed(claimed, owner)

    def run_claimed(self, job: Job, owner: str) -> InferResult:
        """Process a job ``owner`` has claimed (its episodes first if still unstored); releases the claim."""
        try:
            episodes: list[MemoryEvent] = []
            if job.stage == "new":
                episodes = self._store_episodes(job.id, job.user_id, job.payload)
            return self._run(job, episodes)
        finally:
            self.queue.release(job.id, owner)  # no-op once the job is marked done or failed

    def _run(self, job: Job, episodes: list[MemoryEvent]) -> InferResult:
        p = job.payload
        to_agent, exhausted = 0, False
        with meter(self.lm, self.adapter) as m, spending(self.budget, m):
            try:
                facts = self.extractor(p.messages, p.context)
                if p.categories:
                    facts = [f.model_copy(update={"categories": list(dict.fromkeys([*f.categories, *p.categories]))})
                             for f in facts]
                with self._lock_user(job.user_id):
                    events, to_agent, exhausted = self._maintain(job, facts)
                    if self.parts.settings.graph and facts:  # graph memory (remem.graph): triplets, same turns
                        from ..graph.extract import graph_step

                        graph_step(self.parts, job.user_id, p.messages, p.context, actor=p.actor)
            except (ExtractionError, MaintenanceError, BudgetExceededError) as exc:
                usage = m.usage
                self._record(job.user_id, usage)
                self.queue.mark_failed(job.id, str(exc), exc.raw_output)
                exc.context.update(job_id=job.id, usage=usage.model_dump(),
                                   episode_ids=[e.memory_id for e in episodes if e.memory_id])
                raise
            usage = m.usage
        self._record(job.user_id, usage)
        self.queue.mark_done(job.id)
        return InferResult(job_id=job.id, events=events, usage=usage, episodes=episodes, facts=facts,
                           to_agent=to_agent, budget_exhausted=exhausted)

    def _maintain(self, job: Job, facts: list[Fact]) -> tuple[list[MemoryEvent], int, bool]:
        """Triage, then the agent for the conflicts: (events, facts sent to the agent, budget exhausted)."""
        p = job.payload
        if not self.triage:
            result = self.maintainer(job.user_id, facts, session_id=p.session_id, actor=p.actor, metadata=p.metadata)
            return result.events, len(facts), result.budget_exhausted
        routed = triage(self.parts, job.user_id, facts, floor=self.conflict_floor,
                        near_duplicate=self.near_duplicate, session_id=p.session_id, actor=p.actor,
                        metadata=p.metadata)
        conflicts = routed.conflicts
        result = self.maintainer(job.user_id, conflicts, session_id=p.session_id, actor=p.actor,
                                 metadata=p.metadata)
        return routed.events + result.events, len(conflicts), result.budget_exhausted

    def _record(self, user_id: str, usage: LLMUsage) -> None:
        record_usage(self.parts.history.database, user_id, usage)

    def record_usage(self, user_id: str, usage: LLMUsage) -> None:
        """Add usage spent outside a job (a chat reply) to the user's totals (``remem stats``)."""
        self._record(user_id, usage)

    @contextmanager
    def _lock_user(self, user_id: str) -> Iterator[None]:
        """One maintenance run per user at a time (across processes on Postgres)."""
        with self.parts.locks.hold(user_id, "maintain"):
            yield

    # -- entry points ------------------------------------------------------------------------------------
    def add(
        self, messages: Sequence[Message], *, user_id: str, metadata: dict[str, Any] | None = None,
        categories: Sequence[str] | None = None, session_id: str | None = None, actor: str = "api",
        context: Sequence[Message] | None = None, background: bool = False,
    ) -> InferResult:
        """What ``Memory.add(..., infer=True)`` calls: queue + store the turns, then process them in this thread,
        or (``background=True``) return at once with ``pending=True`` and let the worker process them."""
        if background:
            job_id, episodes = self.submit(messages, user_id=user_id, metadata=metadata, categories=categories,
                                           session_id=session_id, actor=actor, context=context, background=True)
            return InferResult(job_id=job_id, episodes=episodes, pending=True)
        owner = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        job_id, episodes = self._enqueue(messages, user_id=user_id, metadata=metadata, categories=categories,
                                         session_id=session_id, actor=actor, context=context, owner=owner)
        job = self.queue.get(job_id)
        assert job is not None
        try:
            result = self.run_claimed(job, owner)
        except LLMError as exc:
            exc.context.update(episode_ids=[e.memory_id for e in episodes if e.memory_id])
            raise
        return result.model_copy(update={"episodes": episodes})

    def start_worker(self, **options: Any) -> BackgroundWorker:
        """The in-process worker thread (started on first background add; ``options`` go to :class:`Worker`)."""
        with self._guard:
            if self._background is None or not self._background.alive:
                self._background = BackgroundWorker(Worker(self, name="background", lease_seconds=self.lease_seconds,
                                                           **options))
            return self._background

    def process_in_background(self, job_id: str) -> None:
        """Have this process's worker thread process a submitted job (and any other free job); a failure leaves
        it pending (see :meth:`reprocess`)."""
        del job_id  # the worker takes free jobs oldest first; this one is among them
        self.start_worker().notify()

    def reprocess(self, user_id: str | None = None, limit: int | None = None) -> ReprocessReport:
        """Retry pending jobs, oldest first; each outcome says whether it is done now."""
        report = ReprocessReport()
        for job in self.queue.pending(user_id=user_id, limit=limit):
            try:
                result = self.process(job.id)
            except (LLMError, JobBusyError) as exc:
                raw = exc.raw_output if isinstance(exc, LLMError) else None
                usage = LLMUsage.model_validate(exc.context.get("usage") or {})
                report.outcomes.append(JobOutcome(job_id=job.id, user_id=job.user_id, ok=False, error=str(exc),
                                                  raw_output=raw, usage=usage))
                report.usage = report.usage + usage
                continue
            report.outcomes.append(JobOutcome(job_id=job.id, user_id=job.user_id, ok=True, events=result.events,
                                              usage=result.usage))
            report.usage = report.usage + result.usage
        return report

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker thread has processed every job submitted in the background so far (failed
        jobs wait for their retry); True if it is idle (also when there is no worker thread)."""
        with self._guard:
            background = self._background
        return True if background is None else background.wait_idle(timeout)

    def close(self) -> None:
        with self._guard:
            background, self._background = self._background, None
        if background is not None:
            background.stop(timeout=60.0)
