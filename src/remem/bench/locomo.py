"""Loading LoCoMo (Maharana et al., 2024) as published: a JSON list of samples.

Traps handled here (see ``../shared/README.md``): category ids are 1 multi-hop, 2 temporal, 3 open-domain,
4 single-hop, 5 adversarial; evidence ids can be malformed (``"D8:6; D9:17"``, ``"D:11:26"``, ``"D30:05"``);
some sessions have a date but no turns; image turns keep their ``blip_caption``; each session's date is the
time its turns were said.

``observations=True`` also loads each session's ``observation`` (per speaker, ``[fact, evidence]`` pairs written
by an LLM, evidence a string or a list of dia_ids, normalised like question evidence) as :class:`Fact` s dated
with their session: a stand-in for what LLM extraction adds, for measuring facts beside turns without an LM.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .dataset import Conversation, Fact, Question, Turn

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)")
_SESSION_KEY = re.compile(r"^session_(\d+)$")


def parse_session_date(text: str) -> datetime | None:
    """``"1:56 pm on 8 May, 2023"`` -> 2023-05-08 13:56 UTC (None when it does not parse): the data names no
    zone, so its wall times are read as UTC and dates shown to the LM (``%d %B %Y``) are the data's own."""
    cleaned = " ".join(text.replace(",", "").split())
    for fmt in ("%I:%M %p on %d %B %Y", "%I:%M %p on %B %d %Y", "%d %B %Y"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def normalize_evidence(raw: Any) -> list[str]:
    """Every well-formed ``D<session>:<turn>`` in the evidence list, repaired and without duplicates."""
    found: list[str] = []
    for item in raw or []:
        for m in _EVIDENCE.finditer(str(item)):
            found.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return list(dict.fromkeys(found))


def _turns(sample_id: str, conv: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    sessions = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
    for n in sessions:
        when = parse_session_date(str(conv.get(f"session_{n}_date_time", "")))
        for i, t in enumerate(conv.get(f"session_{n}") or []):
            if not isinstance(t, dict) or "dia_id" not in t:
                raise ValidationError(f"LoCoMo {sample_id} session {n} turn {i} has no dia_id", turn=str(t)[:200])
            dia = normalize_evidence([t["dia_id"]])
            turns.append(Turn(
                id=dia[0] if dia else str(t["dia_id"]), session_id=f"{sample_id}/D{n}", seq=i,
                speaker=str(t.get("speaker") or ""), role="user", text=str(t.get("text") or ""),
                observed_at=when, caption=t.get("blip_caption") or None,
            ))
    return turns


def _observations(sample_id: str, conv: dict[str, Any], observed: Any) -> list[Fact]:
    """The ``observation`` facts of a sample; those without a usable evidence id are left out."""
    if not isinstance(observed, dict):
        raise ValidationError(f"LoCoMo {sample_id} has no observation object", sample=sample_id)
    facts: list[Fact] = []
    for key in sorted(observed, key=lambda k: int(m.group(1)) if (m := re.search(r"(\d+)", k)) else 0):
        m = re.fullmatch(r"session_(\d+)_observation", key)
        if m is None or not isinstance(observed[key], dict):
            continue
        when = parse_session_date(str(conv.get(f"session_{m.group(1)}_date_time", "")))
        for speaker, pairs in observed[key].items():
            for pair in pairs or []:
                if not isinstance(pair, list) or len(pair) != 2 or not str(pair[0]).strip():
                    raise ValidationError(f"LoCoMo {sample_id} {key}: malformed observation {str(pair)[:200]}")
                raw = pair[1] if isinstance(pair[1], list) else [pair[1]]
                ids = normalize_evidence(raw)
                if ids:
                    facts.append(Fact(text=str(pair[0]).strip(), source_ids=ids, observed_at=when, about=speaker))
    return facts


def load_locomo(path: str | Path, *, observations: bool = False) -> list[Conversation]:
    """Every sample of a LoCoMo JSON file as a :class:`Conversation` (category 5 kept, for abstention); with
    ``observations`` each conversation's observation facts too."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read LoCoMo data {path}: {exc}", path=str(path)) from exc
    if not isinstance(data, list):
        raise ValidationError(f"{path} is not a LoCoMo file (expected a JSON list of samples)", path=str(path))
    out: list[Conversation] = []
    for s_index, sample in enumerate(data):
        if not isinstance(sample, dict) or "conversation" not in sample or "qa" not in sample:
            raise ValidationError(f"{path}: sample {s_index} lacks conversation/qa", path=str(path))
        sid = str(sample.get("sample_id") or f"sample-{s_index}")
        questions = []
        for q_index, qa in enumerate(sample["qa"]):
            cat = CATEGORIES.get(int(qa.get("category", 0)), f"category-{qa.get('category')}")
            questions.append(Question(
                id=f"{sid}/q{q_index}", text=str(qa["question"]), category=cat,
                evidence=normalize_evidence(qa.get("evidence")),
                answer=None if qa.get("answer") is None else str(qa["answer"]),
                adversarial_answer=None if qa.get("adversarial_answer") is None else str(qa["adversarial_answer"]),
            ))
        facts = _observations(sid, sample["conversation"], sample.get("observation")) if observations else []
        out.append(Conversation(id=sid, turns=_turns(sid, sample["conversation"]), questions=questions,
                                facts=facts))
    return out
