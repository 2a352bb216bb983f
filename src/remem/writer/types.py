"""Value types of the write path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ..models import MemoryRecord

#: Exact-duplicate detection on insert: ``any`` (a live memory of any kind with the same normalised text),
#: ``kind`` (of the same kind: the pipeline's facts are not duplicates of raw turns), ``none``.
DedupeMode = Literal["any", "kind", "none"]


@dataclass(frozen=True)
class Change:
    """One record's change: the store holds ``before`` (None: no such point) and must hold ``after``
    (None: remove the point)."""

    user_id: str
    memory_id: str
    before: MemoryRecord | None
    after: MemoryRecord | None


class RecoveryReport(BaseModel):
    """What recovery found and finished (:meth:`remem.writer.Writer.recover`)."""

    rolled_forward: int = 0
    rolled_back: int = 0
    erasures_finished: int = 0
    users: list[str] = []

    @property
    def total(self) -> int:
        return self.rolled_forward + self.rolled_back + self.erasures_finished
