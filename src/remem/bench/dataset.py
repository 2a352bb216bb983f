"""The common shape both benchmark loaders produce: conversations of turns, and questions with evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..models import MemoryRecord, Message


@dataclass
class Turn:
    """One utterance. ``id`` is the dataset's turn id (LoCoMo ``dia_id``; LongMemEval ``<session>#<index>``)."""

    id: str
    session_id: str
    seq: int
    speaker: str
    role: str
    text: str
    observed_at: datetime | None = None
    caption: str | None = None  # LoCoMo image turns: the BLIP caption, the only trace of the image

    def content(self) -> str:
        """The turn's text plus the image caption when there is one."""
        body = self.text.strip()
        if self.caption:
            body = f"{body} [shares a photo: {self.caption.strip()}]".strip()
        return body

    def memory_text(self) -> str:
        """What remem indexes for the turn as an episode: ``speaker: content``."""
        return f"{self.speaker}: {self.content()}" if self.speaker else self.content()

    def message(self) -> Message:
        """The turn as a chat message (for the LLM pipeline: id = turn id, name = speaker)."""
        return Message(role="assistant" if self.role == "assistant" else "user", content=self.content(),
                       name=self.speaker or None, timestamp=self.observed_at, id=self.id)

    def record(self, user_id: str) -> MemoryRecord:
        return MemoryRecord(
            user_id=user_id, text=self.memory_text(), kind="episode", observed_at=self.observed_at,
            source_ids=[self.id], role=self.role, speaker=self.speaker or None, session_id=self.session_id,
            seq=self.seq,
        )


@dataclass
class Fact:
    """A distilled statement with the ids of the turns it comes from (LoCoMo ``observation``: LLM-written
    observations about a speaker, a stand-in for what remem's LLM extraction adds)."""

    text: str
    source_ids: list[str]
    observed_at: datetime | None = None
    about: str | None = None

    def record(self, user_id: str) -> MemoryRecord:
        return MemoryRecord(user_id=user_id, text=self.text, kind="fact", observed_at=self.observed_at,
                            source_ids=list(self.source_ids), metadata={"about": self.about} if self.about else {})


@dataclass
class Question:
    """A question with its gold evidence turn ids; ``category`` is a readable name (``multi-hop`` …)."""

    id: str
    text: str
    category: str
    evidence: list[str]
    answer: str | None = None
    reference_time: datetime | None = None
    answer_sessions: list[str] = field(default_factory=list)
    adversarial_answer: str | None = None


@dataclass
class Conversation:
    """One user's history (LoCoMo: a conversation; LongMemEval: one question's haystack) and its questions."""

    id: str
    turns: list[Turn]
    questions: list[Question]
    facts: list[Fact] = field(default_factory=list)

    def records(self) -> list[MemoryRecord]:
        """What the benchmark stores for this history: one episode per turn, then its facts (if loaded)."""
        return [t.record(self.user_id) for t in self.turns] + [f.record(self.user_id) for f in self.facts]

    @property
    def user_id(self) -> str:
        return f"bench-{self.id}"


def session_of(turn_id: str) -> str:
    """The session part of a turn id (``D3:4`` -> ``D3``; ``abc_1#4`` -> ``abc_1``)."""
    if "#" in turn_id:
        return turn_id.rsplit("#", 1)[0]
    return turn_id.split(":", 1)[0]
