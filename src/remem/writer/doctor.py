"""``remem doctor``: compare the vector store with history (the system of record) and repair what disagrees.

For each user, the last snapshot of every memory in history is what the store must hold. Disagreements:

- ``missing``: history has the memory, the store does not (a lost write) — repaired by writing the snapshot;
- ``differs``: the store holds another version (text, state, categories, …) — repaired the same way;
- ``orphans``: the store holds a memory history never recorded — *adopted*: an ADD event with actor ``doctor``
  is recorded for it (a memory is never deleted by a repair);
- ``intents``: changes a crashed process left half done — finished (see :mod:`remem.writer`).
"""

from __future__ import annotations

from contextlib import nullcontext

from pydantic import BaseModel, Field

from ..models import EventType, HistoryEvent, MemoryRecord
from ..stores.base import MemoryFilter
from .core import Writer
from .types import Change, RecoveryReport

PAGE = 5000


class UserCheck(BaseModel):
    """Disagreements found for one user (memory ids)."""

    user_id: str
    memories: int = 0
    missing: list[str] = Field(default_factory=list)
    differs: list[str] = Field(default_factory=list)
    orphans: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differs or self.orphans)


class DoctorReport(BaseModel):
    """The outcome of :func:`check`: ``ok`` when store and history agree (after repairs, if asked)."""

    users_checked: int = 0
    memories_checked: int = 0
    pending_intents: int = 0
    recovered: RecoveryReport = Field(default_factory=RecoveryReport)
    problems: list[UserCheck] = Field(default_factory=list)
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return (self.repaired or (not self.problems and self.pending_intents == 0))


def _store_records(writer: Writer, user_id: str) -> dict[str, MemoryRecord]:
    flt = MemoryFilter(user_id=user_id, deleted=None)
    out: dict[str, MemoryRecord] = {}
    total = writer.store.count(flt)
    offset = 0
    while offset < total:
        page = writer.store.scroll(flt, offset=offset, limit=PAGE, order="asc")
        if not page:
            break
        out.update((r.id, r) for r in page)
        offset += len(page)
    return out


def check(writer: Writer, *, users: list[str] | None = None, repair: bool = False) -> DoctorReport:
    """Check (and with ``repair`` fix) every user known to history, or ``users``."""
    report = DoctorReport()
    report.pending_intents = len(writer.history.intents())
    if repair:
        report.recovered = writer.recover()
    for user_id in users if users is not None else writer.history.users():
        found = _check_user(writer, user_id, repair=repair)
        report.users_checked += 1
        report.memories_checked += found.memories
        if not found.ok:
            report.problems.append(found)
    report.repaired = repair
    return report


def _check_user(writer: Writer, user_id: str, *, repair: bool) -> UserCheck:
    with writer.user_lock(user_id) if repair else nullcontext():
        latest = writer.history.latest(user_id)
        stored = _store_records(writer, user_id)
        found = UserCheck(user_id=user_id, memories=len(stored))
        for memory_id, event in latest.items():
            snapshot = event.snapshot
            have = stored.get(memory_id)
            if have is None:
                found.missing.append(memory_id)
            elif snapshot is not None and have != snapshot:
                found.differs.append(memory_id)
        found.orphans = sorted(set(stored) - set(latest))
        if repair and not found.ok:
            fixes = [Change(user_id, m, None, latest[m].snapshot) for m in [*found.missing, *found.differs]]
            writer._converge(fixes, {}, None, known=False)
            adopted = [HistoryEvent(memory_id=m, user_id=user_id, event=EventType.ADD, new_text=stored[m].text,
                                    actor="doctor", reason="found in the store without history",
                                    created_at=stored[m].created_at, snapshot=stored[m]) for m in found.orphans]
            writer.history.record(adopted)
    return found

