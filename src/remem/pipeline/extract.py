"""Extraction: new conversation turns → atomic :class:`Fact` objects, through ``dspy.Predict(MemoryExtract)``.

The model proposes; the host validates: empty facts are dropped, categories are limited to the allowed set,
source ids must name one of the new messages (else the fact is attributed to all of them), and the date is
the model's ``YYYY-MM-DD`` if it gave a valid one, else a relative expression in the source message resolved
against that message's timestamp, else the message's timestamp. Unusable output is retried a bounded number
of times, then :class:`~remem.errors.ExtractionError` carries the raw output.

Dates live on the sender's calendar: the model sees each new message's timestamp with its own UTC offset
(``2024-07-25T08:00+09:00 (Thursday)``; context turns, stored in UTC, are shown in the zone of the new
messages), and a fact's day — the model's ``YYYY-MM-DD`` or the fallback's — is that day in the source
message's zone, kept as its first instant (local midnight, aware), so time filters in that zone contain it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

import dspy
from pydantic import BaseModel, ConfigDict, Field

from ..bounds import DEFAULT_MAX_TEXT_CHARS
from ..errors import ExtractionError
from ..models import Message
from ..timeexpr import parse_date, resolve_relative, stamp
from ..validation import check_text
from .lm import RETRYABLE, raw_output_of
from .signatures import DEFAULT_CATEGORIES, ExtractedFact, MemoryExtract


class Fact(BaseModel):
    """A validated fact, ready for maintenance."""

    model_config = ConfigDict(extra="forbid")

    text: str
    categories: list[str] = Field(default_factory=list)
    source_ids: list[str] = Field(default_factory=list)
    observed_at: datetime | None = None


def format_messages(messages: Sequence[Message], tz: tzinfo | None = None) -> str:
    """``[id] 2024-07-25T08:00+09:00 (Thursday) Name (role): text`` per line: each timestamp with its own offset,
    or converted to ``tz`` when given."""
    lines = []
    for m in messages:
        when = stamp(m.timestamp, tz) if m.timestamp else "unknown time"
        who = f"{m.name} ({m.role})" if m.name else m.role
        lines.append(f"[{m.id}] {when} {who}: {m.content}")
    return "\n".join(lines)


class Extractor:
    """``dspy.Predict(MemoryExtract)`` with validation and bounded retries. Call inside :func:`lm.meter`."""

    def __init__(
        self, *, instructions: str | None = None, categories: Sequence[str] | None = None, retries: int = 2,
        max_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        signature = MemoryExtract.with_instructions(inspect.cleandoc(instructions or MemoryExtract.instructions))
        self.predict = dspy.Predict(signature)
        self.categories = [c.lower() for c in (categories or DEFAULT_CATEGORIES)]
        self.retries = retries
        self.max_chars = max_chars

    def __call__(self, messages: Sequence[Message], context: Sequence[Message] = ()) -> list[Fact]:
        last: BaseException | None = None
        attempts = self.retries + 1
        for _ in range(attempts):
            try:
                prediction = self.predict(
                    new_messages=format_messages(messages),
                    recent_context=format_messages(context, _zone_of(messages)),
                    categories=self.categories,
                )
                return self.validate(prediction.facts, messages)
            except RETRYABLE as exc:
                last = exc
        assert last is not None
        raise ExtractionError(
            f"fact extraction failed after {attempts} attempts ({type(last).__name__})",
            raw_output=raw_output_of(last), attempts=attempts,
        ) from last

    def validate(self, proposed: object, messages: Sequence[Message]) -> list[Fact]:
        if not isinstance(proposed, list):
            raise TypeError(f"facts must be a list, got {type(proposed).__name__}")
        by_id = {m.id: m for m in messages if m.id}
        facts: list[Fact] = []
        for item in proposed:
            fact = item if isinstance(item, ExtractedFact) else ExtractedFact.model_validate(item)
            text = " ".join(fact.text.split())
            if not text:
                continue
            # A fact is a memory text: NUL, a lone surrogate or more than REMEM_MAX_TEXT_CHARS is unusable
            # output (ValidationError, a ValueError: retried, then ExtractionError), never stored.
            text = check_text(text, self.max_chars, "fact text")
            cats = list(dict.fromkeys(c.strip().lower() for c in fact.categories if isinstance(c, str)))
            cats = [c for c in cats if c in self.categories]
            sources = [i for i in dict.fromkeys(fact.source_ids) if i in by_id] or list(by_id)
            facts.append(Fact(text=text, categories=cats, source_ids=sources,
                              observed_at=self._when(fact.date, [by_id[i] for i in sources])))
        return facts

    @staticmethod
    def _when(proposed: str | None, sources: Sequence[Message]) -> datetime | None:
        parsed = parse_date(proposed, _zone_of(sources) or UTC)
        if parsed is not None:
            return parsed
        for m in sources:
            if m.timestamp is not None and (resolved := resolve_relative(m.content, m.timestamp)) is not None:
                return resolved
        stamps = [m.timestamp for m in sources if m.timestamp is not None]
        return max(stamps) if stamps else None


def _zone_of(messages: Sequence[Message]) -> tzinfo | None:
    """The tzinfo of the first message with a timestamp (the sender's zone), if any."""
    return next((m.timestamp.tzinfo for m in messages if m.timestamp is not None), None)
