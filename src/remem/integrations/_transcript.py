"""A conversation kept as ``episode`` memories: the store behind every framework's chat history/session.

One :class:`Transcript` is one (user, session) pair. Each turn is one episode with ``session_id``, ``role``,
the turn's own id as ``source_ids`` (``m-<12 hex>`` when it has none, as the LLM pipeline does) and, under
``metadata[source]``, the framework's own serialised message, so a history gives back exactly what was put in.
Turns are written with ``dedupe=False``: a user who says "yes" twice said it twice, and a chat history must
replay both. Order is the session's turn number (``seq``, assigned by :meth:`remem.Memory.add_records` in
arrival order); turns without a time get the time of the call plus one microsecond per turn.

Removing turns (``pop``, ``clear``) is a soft delete: the turns leave the history and search but stay
restorable and in the memory's history until :meth:`remem.Memory.forget_user`.

With ``infer=True`` the new turns also go through the LLM pipeline (``Memory.add(..., infer=True)``), which
distils facts from them; its own episode copies are exact duplicates of the turns just stored and become NOOPs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError, ValidationError
from ..memory.core import Memory
from ..models import AddResult, MemoryRecord, Message, utcnow
from ..validation import check_user_id

Role = Literal["user", "assistant", "system", "tool"]
#: Page size when reading a session back (the store's maximum page).
PAGE = 1000


class Turn(BaseModel):
    """One conversation turn as a framework hands it over."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    text: str
    id: str | None = None
    speaker: str | None = None
    timestamp: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict, description="The framework's own message, as JSON.")


class Transcript:
    """The episodes of one user's session, in turn order."""

    def __init__(self, memory: Memory, *, user_id: str, session_id: str, source: str, infer: bool = False) -> None:
        self.memory = memory
        self.user_id = check_user_id(user_id)
        if not isinstance(session_id, str) or not session_id.strip():
            raise ValidationError(f"session id must be a non-empty string, got {session_id!r}")
        self.session_id = session_id
        self.source = source
        if infer and memory.pipeline is None:
            raise ConfigurationError("infer=True needs a Memory with a language model "
                                     "(Memory(lm=...) or REMEM_LM)")
        self.infer = infer

    def records(self, limit: int | None = None) -> list[MemoryRecord]:
        """The live turns, oldest first; ``limit`` keeps the latest ``limit`` of them (still oldest first)."""
        out: list[MemoryRecord] = []
        offset: int | None = 0
        while offset is not None:
            page = self.memory.list(user_id=self.user_id, session_id=self.session_id, kinds=["episode"],
                                    order="asc", offset=offset, limit=PAGE)
            out.extend(page.items)
            offset = page.next_offset
        out.sort(key=lambda r: (r.seq is None, r.seq if r.seq is not None else 0, r.created_at))
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def payload(self, record: MemoryRecord) -> dict[str, Any] | None:
        """The framework message stored with a turn (None for episodes written by something else)."""
        value = record.metadata.get(self.source)
        return value if isinstance(value, dict) else None

    def append(self, turns: Sequence[Turn]) -> AddResult:
        """Store turns (all validated before any is written); with ``infer`` also run the LLM pipeline."""
        if not turns:
            return AddResult()
        now = utcnow()
        # Turns without a time of their own get now + i µs: time order (list, since/until) is arrival order too.
        times = [t.timestamp or now + timedelta(microseconds=i) for i, t in enumerate(turns)]
        # ... and without an id one like the pipeline gives, so facts distilled from them can cite them.
        turns = [t if t.id else t.model_copy(update={"id": f"m-{uuid.uuid4().hex[:12]}"}) for t in turns]
        records = [
            MemoryRecord(user_id=self.user_id, text=t.text, kind="episode", role=t.role, speaker=t.speaker,
                         session_id=self.session_id, observed_at=when,
                         source_ids=[t.id] if t.id else [], metadata={self.source: t.payload})
            for t, when in zip(turns, times, strict=True)
        ]
        result = self.memory.add_records(records, actor=self.source, dedupe=False)
        if self.infer:
            messages = [Message(role=t.role, content=t.text, name=t.speaker, id=t.id, timestamp=when)
                        for t, when in zip(turns, times, strict=True)]
            inferred = self.memory.add(messages, user_id=self.user_id, session_id=self.session_id, infer=True,
                                       actor=self.source)
            result = AddResult(events=[*result.events, *inferred.events], usage=inferred.usage)
        return result

    def pop(self) -> MemoryRecord | None:
        """Soft-delete the latest turn and return it (None when the session is empty)."""
        turns = self.records(limit=1)
        if not turns:
            return None
        return self.memory.delete(turns[0].id, user_id=self.user_id, actor=self.source,
                                  reason="removed from session")

    def clear(self) -> int:
        """Soft-delete every turn of the session; returns how many."""
        turns = self.records()
        for r in turns:
            self.memory.delete(r.id, user_id=self.user_id, actor=self.source, reason="session cleared")
        return len(turns)
