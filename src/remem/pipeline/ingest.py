"""The pipeline behind ``Memory.add(..., infer=True)``: queue durably, store raw turns, extract, maintain.

Order matters and is the whole point:

1. the job (turns, context, options) is written to the pending queue;
2. the turns are stored as ``episode`` memories through the raw path (every turn gets an id), so nothing the
   user said is ever unrecoverable, whatever the LM does next;
3. extraction (``MemoryExtract``) → facts with source ids and resolved dates;
4. maintenance (``UpdateMemory`` ReAct) → ADD / UPDATE / DELETE / NOOP on the user's ``fact`` memories;
5. the job is marked done. A failure after bounded retries raises ``ExtractionError``/``MaintenanceError``
   (with the raw output and the job id) and leaves the job pending for :meth:`Pipeline.reprocess`.

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
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ExtractionError, LLMError, MaintenanceError, RememError
from ..models import AddResult, LLMUsage, MemoryEvent, MemoryRecord, Message, utcnow
from ..parts import HasParts, MemoryParts, parts_of
from ..reads import list_page
from ..storage.base import Job, JobPayload
from .extract import Extractor, Fact
from .lm import LMSpec, meter, resolve_lm
from .maintain import Maintainer


class InferResult(AddResult):
    """``add(infer=True)``: ``events`` are the fact changes; ``episodes`` the raw turns stored first."""

    job_id: str | None = None
    episodes: list[MemoryEvent] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)


class JobOutcome(BaseModel):
    job_id: str
    user_id: str
    ok: bool
    events: list[MemoryEvent] = Field(default_factory=list)
    error: str | None = None
    raw_output: str | None = None
    usage: LLMUsage = Field(default_factory=LLMUsage)


class ReprocessReport(BaseModel):
    outcomes: list[JobOutcome] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


class JobBusyError(RememError):
    """The job is being processed right now (by a background thread of this process)."""

    code = "job_busy"


class Pipeline:
    """Extraction + maintenance for one :class:`~remem.Memory` (or its parts); attaches itself as
    ``memory.pipeline``."""

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
    ) -> None:
        self.parts = parts_of(memory)
        self.lm = resolve_lm(lm, api_base=api_base)
        self.queue = self.parts.queue
        self.extractor = Extractor(instructions=extract_instructions, categories=categories, retries=retries)
        self.maintainer = Maintainer(self.parts, instructions=maintain_instructions, retries=retries,
                                     near_duplicate=near_duplicate)
        self.context_turns = context_turns
        self._guard = threading.Lock()
        self._running: set[str] = set()
        self._threads: list[threading.Thread] = []
        if hasattr(memory, "pipeline"):
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

    def submit(
        self, messages: Sequence[Message], *, user_id: str, metadata: dict[str, Any] | None = None,
        categories: Sequence[str] | None = None, session_id: str | None = None, actor: str = "api",
        context: Sequence[Message] | None = None,
    ) -> tuple[str, list[MemoryEvent]]:
        """Queue the turns durably and store them as episodes; returns (job id, episode events)."""
        now = utcnow()
        msgs = [m.model_copy(update={"id": m.id or f"m-{uuid.uuid4().hex[:12]}", "timestamp": m.timestamp or now})
                for m in messages]
        payload = JobPayload(
            messages=msgs,
            context=list(context) if context is not None else self._recent_context(user_id, session_id),
            metadata=dict(metadata or {}), categories=list(categories or []), session_id=session_id, actor=actor,
        )
        job_id = self.queue.enqueue(user_id, payload)
        return job_id, self._store_episodes(job_id, user_id, payload)

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

    @contextmanager
    def _claim(self, job_id: str) -> Iterator[None]:
        with self._guard:
            if job_id in self._running:
                raise JobBusyError(f"job {job_id} is being processed", job_id=job_id)
            self._running.add(job_id)
        try:
            yield
        finally:
            with self._guard:
                self._running.discard(job_id)

    def process(self, job_id: str) -> InferResult:
        """Run extraction + maintenance for a queued job (stores its episodes first if a crash skipped that)."""
        with self._claim(job_id):
            job = self.queue.get(job_id)
            if job is None:
                raise RememError(f"no queued job {job_id}", job_id=job_id)
            episodes: list[MemoryEvent] = []
            if job.stage == "new":
                episodes = self._store_episodes(job.id, job.user_id, job.payload)
            if job.status == "done":
                return InferResult(job_id=job.id, episodes=episodes)
            return self._run(job, episodes)

    def _run(self, job: Job, episodes: list[MemoryEvent]) -> InferResult:
        p = job.payload
        with meter(self.lm) as m:
            try:
                facts = self.extractor(p.messages, p.context)
                if p.categories:
                    facts = [f.model_copy(update={"categories": list(dict.fromkeys([*f.categories, *p.categories]))})
                             for f in facts]
                with self._lock_user(job.user_id):
                    events = self.maintainer(job.user_id, facts, session_id=p.session_id, actor=p.actor,
                                             metadata=p.metadata)
                    if self.parts.settings.graph and facts:  # graph memory (remem.graph): triplets, same turns
                        from ..graph.extract import graph_step

                        graph_step(self.parts, job.user_id, p.messages, p.context, actor=p.actor)
            except (ExtractionError, MaintenanceError) as exc:
                self.queue.mark_failed(job.id, str(exc), exc.raw_output)
                exc.context.update(job_id=job.id, usage=m.usage.model_dump())
                raise
        self.queue.mark_done(job.id)
        return InferResult(job_id=job.id, events=events, usage=m.usage, episodes=episodes, facts=facts)

    @contextmanager
    def _lock_user(self, user_id: str) -> Iterator[None]:
        """One maintenance run per user at a time (across processes on Postgres)."""
        with self.parts.locks.hold(user_id, "maintain"):
            yield

    # -- entry points ------------------------------------------------------------------------------------
    def add(
        self, messages: Sequence[Message], *, user_id: str, metadata: dict[str, Any] | None = None,
        categories: Sequence[str] | None = None, session_id: str | None = None, actor: str = "api",
        context: Sequence[Message] | None = None,
    ) -> InferResult:
        """What ``Memory.add(..., infer=True)`` calls: submit, then process in this thread."""
        job_id, episodes = self.submit(messages, user_id=user_id, metadata=metadata, categories=categories,
                                       session_id=session_id, actor=actor, context=context)
        result = self.process(job_id)
        return result.model_copy(update={"episodes": episodes})

    def process_in_background(self, job_id: str) -> threading.Thread:
        """Process a submitted job in a thread; a failure leaves it pending (see :meth:`reprocess`)."""

        def work() -> None:
            try:
                self.process(job_id)
            except (LLMError, JobBusyError):
                pass  # recorded on the job (attempts, last error, raw output); reprocess retries it

        thread = threading.Thread(target=work, name=f"remem-job-{job_id[:8]}", daemon=True)
        with self._guard:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

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

    def wait(self, timeout: float | None = None) -> None:
        """Join background jobs started by this pipeline."""
        with self._guard:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)

    def close(self) -> None:
        self.wait(timeout=60.0)
