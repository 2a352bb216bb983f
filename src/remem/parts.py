"""The parts a :class:`remem.Memory` is made of, for the layers it calls (retrieval, pipeline, transfer).

Those layers depend on these parts — the vector store, the history, the queue, the embedder and the one write
path — never on the :class:`~remem.memory.core.Memory` facade that composes them, so they import without it and
there is no import cycle. ``Memory.parts`` is the instance a Memory uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .config import Settings
from .embedders import Embedder
from .storage.base import History, JobQueue, Locks
from .stores.base import VectorStore
from .validation import check_text
from .writer import Writer


@dataclass(frozen=True)
class MemoryParts:
    settings: Settings
    embedder: Embedder
    store: VectorStore
    history: History
    queue: JobQueue
    locks: Locks
    writer: Writer

    def text(self, value: object, what: str = "memory text") -> str:
        """A validated memory text (``ValidationError`` naming ``what`` otherwise)."""
        return check_text(value, self.settings.max_text_chars, what)


class HasParts(Protocol):
    """Anything built from :class:`MemoryParts` (a :class:`remem.Memory`)."""

    @property
    def parts(self) -> MemoryParts: ...


def parts_of(target: MemoryParts | HasParts | Any) -> MemoryParts:
    """The parts of a Memory (or the parts themselves)."""
    if isinstance(target, MemoryParts):
        return target
    parts = getattr(target, "parts", None)
    if not isinstance(parts, MemoryParts):
        raise TypeError(f"expected a remem.Memory or MemoryParts, got {type(target).__name__}")
    return parts
