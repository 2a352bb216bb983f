"""LLM-free retrieval metrics over source turn ids.

A retrieved item covers the turns it came from (its source ids, plus the context turns a neighbour expansion
attached). For a question with evidence turns E, after the top-k items cover turns C_k:

- evidence recall@k = |E ∩ C_k| / |E|; hit@k = [E ∩ C_k ≠ ∅]; all@k = [E ⊆ C_k];
- turns@k = |C_k| and tokens@k = tokens of those turns (so that a system returning bigger items cannot buy
  recall unseen);
- session recall_any@k / recall_all@k (LongMemEval): any / all answer sessions among the sessions of C_k.

**At a token budget** B (:data:`BUDGETS`), the same metrics are computed over the turns covered by a context of at
most B tokens (``recall@1000tok`` …; ``tokens@1000tok`` is the context's exact length): what a system can put
in a prompt of that size, so systems that return bigger items cannot buy recall unseen. Tokens are cl100k
tokens (:mod:`remem.tokens`) everywhere.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..tokens import count_tokens
from .dataset import Question, session_of

KS = (1, 5, 10, 20)
#: Context budgets (cl100k tokens) at which recall is reported.
BUDGETS = (500, 1000, 2000)

__all__ = ["BUDGETS", "KS", "QuestionResult", "aggregate", "count_tokens", "coverage", "latency_summary",
           "score_budget", "score_question"]


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
    out: dict[str, float] = {}
    for k in ks:
        covered: dict[str, None] = {}
        for item in ranked[:k]:
            covered.update(dict.fromkeys(item))
        out.update(coverage(question, covered.keys(), f"@{k}"))
        out[f"tokens@{k}"] = float(sum(turn_tokens.get(t, 0) for t in covered))
    return out


def coverage(question: Question, covered: Iterable[str], suffix: str) -> dict[str, float]:
    """recall/hit/all, turns and session recall of one set of covered turn ids, keys ending in ``suffix``."""
    covered = set(covered)
    evidence = set(question.evidence)
    answer_sessions = set(question.answer_sessions)
    found = evidence & covered
    out: dict[str, float] = {}
    if evidence:
        out[f"recall{suffix}"] = len(found) / len(evidence)
        out[f"hit{suffix}"] = float(bool(found))
        out[f"all{suffix}"] = float(found == evidence)
    out[f"turns{suffix}"] = float(len(covered))
    if answer_sessions:
        sessions = {session_of(t) for t in covered}
        out[f"session_any{suffix}"] = float(bool(answer_sessions & sessions))
        out[f"session_all{suffix}"] = float(answer_sessions <= sessions)
    return out


def score_budget(question: Question, covered: Iterable[str], tokens: int, budget: int) -> dict[str, float]:
    """Metrics of a context of ``tokens`` tokens (at most ``budget``) that covers the turn ids ``covered``."""
    out = coverage(question, covered, f"@{budget}tok")
    out[f"tokens@{budget}tok"] = float(tokens)
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
