"""Workers that drain the pending queue: a thread in-process (the embedded default) or ``remem worker``.

A worker claims one job at a time with :meth:`remem.storage.base.JobQueue.claim` — one conditional ``UPDATE``,
so across threads and processes a job is claimed by one worker — processes it (extraction, triage, the agent
for conflicts) and claims the next. A claim is a lease (``lease_seconds``, 15 min): a worker that dies leaves
its job claimed until the lease ends, then another worker takes it. A job whose processing outlives its lease
can be taken by a second worker meanwhile; each of its writes still goes through the writer's duplicate check,
under the user's ``maintain`` lock, so that ends in NOOPs, not copies. A job that fails is retried by workers
after ``retry_after`` seconds (60), at most ``max_attempts`` times in all (3); after that it waits for
``remem reprocess``.

:class:`BackgroundWorker` is the in-process thread behind ``add(infer=True, background=True)``: started on first
use, woken at each background submit, polling every ``poll_seconds`` otherwise, stopped by ``Memory.close()``.
``remem worker`` runs :meth:`Worker.run` as its own process; with the embedded default only one process may
open a data directory, so separate workers are for the server deployment (``REMEM_DATABASE_URL`` and a shared
vector store: ``qdrant`` or ``pgvector``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..errors import LLMError, RememError
from ..models import LLMUsage, MemoryEvent

if TYPE_CHECKING:
    from .ingest import Pipeline

logger = logging.getLogger(__name__)


def worker_id(name: str | None = None) -> str:
    """``host:pid:name`` (a random name by default): who holds a claim, for ``remem reprocess --list``."""
    return f"{socket.gethostname()}:{os.getpid()}:{name or uuid.uuid4().hex[:8]}"


class JobOutcome(BaseModel):
    """What processing one job did: ``ok`` (done) or the error that left it pending."""

    job_id: str
    user_id: str
    ok: bool
    events: list[MemoryEvent] = Field(default_factory=list)
    error: str | None = None
    raw_output: str | None = None
    usage: LLMUsage = Field(default_factory=LLMUsage)


class Worker:
    """Claims and processes pending jobs for ``pipeline`` (see the module docstring for the claim rules)."""

    def __init__(
        self, pipeline: Pipeline, *, name: str | None = None, lease_seconds: float = 900.0, max_attempts: int = 3,
        retry_after: float = 60.0, poll_seconds: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.id = worker_id(name)
        self.lease_seconds, self.max_attempts, self.retry_after = lease_seconds, max_attempts, retry_after
        self.poll_seconds = poll_seconds

    def step(self) -> JobOutcome | None:
        """Claim and process the oldest free job; ``None`` when there is none."""
        job = self.pipeline.queue.claim(self.id, self.lease_seconds, max_attempts=self.max_attempts,
                                        retry_after=self.retry_after)
        if job is None:
            return None
        try:
            result = self.pipeline.run_claimed(job, self.id)
        except LLMError as exc:  # recorded on the job (attempts, error, raw output): it stays pending
            usage = LLMUsage.model_validate(exc.context.get("usage") or {})
            return JobOutcome(job_id=job.id, user_id=job.user_id, ok=False, error=str(exc),
                              raw_output=exc.raw_output, usage=usage)
        return JobOutcome(job_id=job.id, user_id=job.user_id, ok=True, events=result.events, usage=result.usage)

    def drain(self, stop: threading.Event | None = None, limit: int | None = None) -> list[JobOutcome]:
        """Process free jobs until there is none left (or ``stop`` is set, or ``limit`` jobs are done)."""
        outcomes: list[JobOutcome] = []
        while (stop is None or not stop.is_set()) and (limit is None or len(outcomes) < limit):
            outcome = self.step()
            if outcome is None:
                break
            outcomes.append(outcome)
        return outcomes

    def run(self, stop: threading.Event) -> None:
        """Drain, then poll every ``poll_seconds``, until ``stop`` is set (``remem worker``)."""
        while not stop.is_set():
            try:
                self.drain(stop)
            except RememError as exc:  # a store/database hiccup: keep the worker alive, the job stays queued
                logger.warning("worker %s: %s: %s", self.id, type(exc).__name__, exc)
            stop.wait(self.poll_seconds)


class BackgroundWorker:
    """The in-process worker thread of one pipeline (``add(..., background=True)``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._generation = 0  # bumped by each notify()
        self._idle_at = -1  # the generation the worker last found nothing to do at
        self._thread = threading.Thread(target=self._loop, name=f"remem-worker-{worker.id}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def notify(self) -> None:
        """A job was queued: drain now."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                seen = self._generation
            try:
                self.worker.drain(self._stop)
            except RememError as exc:
                logger.warning("background worker: %s: %s", type(exc).__name__, exc)
            with self._cond:
                if self._generation == seen:
                    self._idle_at = seen
                    self._cond.notify_all()
                    self._cond.wait(self.worker.poll_seconds)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every job queued before this call is processed (or failed and waiting to be retried)."""
        with self._cond:
            target = self._generation
            return self._cond.wait_for(lambda: self._idle_at >= target or not self.alive, timeout)

    def stop(self, timeout: float | None = 60.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
