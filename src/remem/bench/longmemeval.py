"""Loading LongMemEval (Wu et al., 2024) as published: a JSON list of questions, each with its haystack.

Each question becomes its own user (its haystack sessions are its history). A turn's id is
``<haystack session id>#<index>``; its evidence flag is ``has_answer``. ``_abs`` (abstention) questions have no
evidence and are skipped for recall. Times: ``"2023/03/08 (Wed) 00:06"``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .dataset import Conversation, Question, Turn

_WEEKDAY = re.compile(r"\s*\([A-Za-z]{3}\)\s*")


def parse_lme_date(text: str) -> datetime | None:
    """``"2023/05/20 (Sat) 02:21"`` -> 2023-05-20 02:21 UTC (None when it does not parse).

    The data names no zone: session and question dates are both wall times read as UTC, so relative
    expressions in questions are counted on the data's own calendar (:mod:`remem.timeexpr`)."""
    cleaned = _WEEKDAY.sub(" ", str(text)).strip()
    for fmt in ("%Y/%m/%d %H:%M", "%Y/%m/%d"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _conversation(index: int, item: dict[str, Any]) -> Conversation:
    qid = str(item["question_id"])
    turns: list[Turn] = []
    evidence: list[str] = []
    sessions = item.get("haystack_sessions") or []
    ids = item.get("haystack_session_ids") or [f"s{i}" for i in range(len(sessions))]
    dates = item.get("haystack_dates") or [None] * len(sessions)
    for sid, when, session in zip(ids, dates, sessions, strict=True):
        at = parse_lme_date(when) if when else None
        for i, t in enumerate(session):
            tid = f"{sid}#{i}"
            role = str(t.get("role") or "user")
            turns.append(Turn(id=tid, session_id=str(sid), seq=i, speaker=role, role=role,
                              text=str(t.get("content") or ""), observed_at=at))
            if t.get("has_answer"):
                evidence.append(tid)
    question = Question(
        id=qid, text=str(item["question"]), category=str(item.get("question_type") or "unknown"),
        evidence=evidence, answer=None if item.get("answer") is None else str(item["answer"]),
        reference_time=parse_lme_date(item.get("question_date") or ""),
        answer_sessions=[str(s) for s in item.get("answer_session_ids") or []],
    )
    return Conversation(id=f"lme-{qid}", turns=turns, questions=[question])


def is_abstention(question: Question) -> bool:
    return question.id.endswith("_abs")


def load_longmemeval(path: str | Path) -> list[Conversation]:
    """Every question of a LongMemEval JSON file as its own :class:`Conversation`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read LongMemEval data {path}: {exc}", path=str(path)) from exc
    if not isinstance(data, list):
        raise ValidationError(f"{path} is not a LongMemEval file (expected a JSON list)", path=str(path))
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "question_id" not in item or "haystack_sessions" not in item:
            raise ValidationError(f"{path}: item {i} lacks question_id/haystack_sessions", path=str(path))
        out.append(_conversation(i, item))
    return out
