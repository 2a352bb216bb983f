"""LLM-free retrieval metrics over source turn ids.

A retrieved item covers the turns it came from (its source ids, plus the context turns a neighbour expansion
attached). For a question with evidence turns E, after the top-k items cover turns C_k:

- evidence recall@k = |E ∩ C_k| / |E|; hit@k = [E ∩ C_k ≠ ∅]; all@k = [E ⊆ C_k];
- turns@k = |C_k| and tokens@k = tokens of those turns (so that a system returning bigger items cannot buy
  recall unseen);
- session recall_any@k / recall_all@k (LongMemEval): any / all answer sessions among the sessions of C_k.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .dataset import Question, session_of

KS = (1, 5, 10, 20)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Word and punctuation tokens (a tokenizer-free proxy for LLM tokens; ~0.75x of BPE counts)."""
    return len(_TOKEN.findall(text))


@dataclass
class QuestionResult:
    """One question's retrieval under one system: covered turn ids per rank, and per-k metrics."""

    question_id: str
    category: str
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0


def score_question(
    question: Question,
    ranked: Sequence[Sequence[str]],
    turn_tokens: Mapping[str, int],
    ks: Iterable[int] = KS,
) -> dict[str, float]:
    """Metrics at every k for one question; ``ranked`` lists each item's covered turn ids, best first."""
    evidence = set(question.evidence)
    answer_sessions = set(question.answer_sessions)
    out: dict[str, float] = {}
    for k in ks:
        covered: dict[str, None] = {}
        for item in ranked[:k]:
            covered.update(dict.fromkeys(item))
        found = evidence & covered.keys()
        if evidence:
            out[f"recall@{k}"] = len(found) / len(evidence)
            out[f"hit@{k}"] = float(bool(found))
            out[f"all@{k}"] = float(found == evidence)
        out[f"turns@{k}"] = float(len(covered))
        out[f"tokens@{k}"] = float(sum(turn_tokens.get(t, 0) for t in covered))
        if answer_sessions:
            sessions = {session_of(t) for t in covered}
            out[f"session_any@{k}"] = float(bool(answer_sessions & sessions))
            out[f"session_all@{k}"] = float(answer_sessions <= sessions)
    return out


def aggregate(results: Sequence[QuestionResult]) -> dict[str, dict[str, float]]:
    """Mean of every metric per category and ``overall`` (plus the question count ``n``)."""
    groups: defaultdict[str, list[QuestionResult]] = defaultdict(list)
    for r in results:
        groups[r.category].append(r)
        groups["overall"].append(r)
    table: dict[str, dict[str, float]] = {}
    for name, rs in groups.items():
        keys = sorted({k for r in rs for k in r.metrics})
        row = {k: statistics.fmean(r.metrics[k] for r in rs if k in r.metrics) for k in keys}
        row["n"] = float(len(rs))
        table[name] = row
    return table


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean of per-query latencies in milliseconds."""
    if not latencies_ms:
        return {}
    ordered = sorted(latencies_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]  # nearest rank

    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "mean": statistics.fmean(ordered), "n": len(ordered)}
