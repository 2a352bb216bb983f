"""The pipeline's graph step: new turns → triplets (``dspy.Predict(TripletExtract)``) → resolved and stored.

:func:`graph_step` is what :class:`remem.pipeline.Pipeline` calls after fact extraction and maintenance, when
graph memory is on (one call site in ``pipeline/ingest.py``), under the user's ``maintain`` lock and inside the
pipeline's usage meter, so its LM calls count in the turn's usage. It costs one ``TripletExtract`` call per batch
of turns that yielded facts (a batch with none — small talk — costs nothing more) plus one short ``EntityMatch``
call per *ambiguous* entity mention (most mentions resolve by name or embedding without the LM;
:mod:`remem.graph.resolve`).

Why a separate call rather than a second output of ``MemoryExtract`` — measured with the scripted LM's counters
on LoCoMo sessions (``benchmarks/graph_cost.py``; README, "Graph memory"): when turns arrive a session at a time,
the combined call adds 79 tokens per turn against 142 for the separate call (it does not repeat the turns), but
when they arrive one at a time, as the chat agent saves them, it adds 705 against 661 (its longer prompt is paid
on every turn, facts or not). The separate call also keeps a malformed triplet list from failing — and
retrying — the fact extraction, and leaves ``MemoryExtract`` unchanged with graph memory off.

The model proposes, the host validates: relations are normalised to snake_case (others dropped), entity types
mapped onto the five types, source ids limited to the new messages (else all of them), and dates are the
model's ``YYYY-MM-DD`` or, failing that, a time expression in its field ("March", "since March", "last week")
resolved against the source message's timestamp (:func:`remem.timeexpr.parse_time_range`, the range's first
instant: "until last week" ends the relation on the Monday of last week). Unusable
output is retried, then :class:`~remem.errors.ExtractionError` carries the raw output (the job stays queued).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

import dspy

from ..errors import ExtractionError, ValidationError
from ..models import Message
from ..parts import MemoryParts
from ..pipeline.extract import format_messages
from ..pipeline.lm import RETRYABLE, raw_output_of
from ..timeexpr import parse_date, parse_time_range
from .confirm import LMConfirm
from .core import Graph
from .models import ENTITY_TYPES, MAX_SOURCE_IDS, EntityRef, GraphChange, Triplet
from .names import check_hint, check_name, entity_type, relation_name
from .signatures import ExtractedTriplet, TripletExtract


def _zone(messages: Sequence[Message]) -> tzinfo | None:
    return next((m.timestamp.tzinfo for m in messages if m.timestamp is not None), None)


def _when(value: str | None, sources: Sequence[Message]) -> datetime | None:
    """The model's date, or a time expression in it resolved against the source message's time."""
    if not value or not isinstance(value, str) or value.strip().casefold() in ("null", "none", "unknown"):
        return None
    parsed = parse_date(value.strip(), _zone(sources) or UTC)
    if parsed is not None:
        return parsed
    anchor = max((m.timestamp for m in sources if m.timestamp is not None), default=None)
    if anchor is None:
        return None
    bare = re.sub(r"^(since|from|until|till|to|in|during)\s+", "", value.strip(), flags=re.IGNORECASE)
    found = parse_time_range(value, anchor) or parse_time_range(f"in {bare}", anchor)
    return found.since if found is not None else None


def _hint(value: str | None) -> str | None:
    """The model's hint, or None when it is unusable (too long, control characters): a hint only helps."""
    try:
        return check_hint(value, "hint")
    except ValidationError:
        return None


class TripletExtractor:
    """``dspy.Predict(TripletExtract)`` with validation and bounded retries. Call inside :func:`remem.pipeline.lm.meter`."""

    def __init__(self, *, instructions: str | None = None, retries: int = 2) -> None:
        signature = TripletExtract.with_instructions(inspect.cleandoc(instructions or TripletExtract.instructions))
        self.predict = dspy.Predict(signature)
        self.retries = retries

    def __call__(self, messages: Sequence[Message], context: Sequence[Message] = ()) -> list[Triplet]:
        last: BaseException | None = None
        attempts = self.retries + 1
        for _ in range(attempts):
            try:
                prediction = self.predict(new_messages=format_messages(messages),
                                          recent_context=format_messages(context, _zone(messages)),
                                          entity_types=list(ENTITY_TYPES))
                return self.validate(prediction.triplets, messages)
            except RETRYABLE as exc:
                last = exc
        assert last is not None
        raise ExtractionError(f"triplet extraction failed after {attempts} attempts ({type(last).__name__})",
                              raw_output=raw_output_of(last), attempts=attempts) from last

    @staticmethod
    def validate(proposed: object, messages: Sequence[Message]) -> list[Triplet]:
        if not isinstance(proposed, list):
            raise TypeError(f"triplets must be a list, got {type(proposed).__name__}")
        by_id = {m.id: m for m in messages if m.id}
        out: list[Triplet] = []
        for item in proposed:
            t = item if isinstance(item, ExtractedTriplet) else ExtractedTriplet.model_validate(item)
            try:
                relation = relation_name(t.relation)
                subject, obj = check_name(t.subject, "subject"), check_name(t.object, "object")
            except ValidationError:
                continue  # not a usable triplet (an empty name, a sentence for a relation): skip it
            sources = ([i for i in dict.fromkeys(t.source_ids) if i in by_id] or list(by_id))[:MAX_SOURCE_IDS]
            cited = [by_id[i] for i in sources] or list(messages)
            start, end = _when(t.valid_from, cited), _when(t.valid_to, cited)
            if start is not None and end is not None and end < start:
                start = None
            stamps = [m.timestamp for m in cited if m.timestamp is not None]
            out.append(Triplet(
                subject=EntityRef(name=subject, type=entity_type(t.subject_type, "person"),
                                  hint=_hint(t.subject_hint)),
                relation=relation,
                object=EntityRef(name=obj, type=entity_type(t.object_type), hint=_hint(t.object_hint)),
                valid_from=start, valid_to=end, source_ids=sources, observed_at=max(stamps) if stamps else None,
            ))
        return out


def graph_step(parts: MemoryParts, user_id: str, messages: Sequence[Message], context: Sequence[Message] = (),
               *, actor: str = "pipeline", extractor: TripletExtractor | None = None) -> list[GraphChange]:
    """Extract triplets from ``messages`` and add them to the user's graph (no-op when graph memory is off).
    Uses the LM of the current DSPy context (the pipeline's meter sets it). Raises ``ExtractionError``."""
    if not parts.settings.graph:
        return []
    triplets = (extractor or TripletExtractor())(messages, context)
    if not triplets:
        return []
    return Graph(parts).add_many(triplets, user_id=user_id, actor=actor, confirm=LMConfirm())
