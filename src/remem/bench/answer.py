"""Answering from retrieved memories and judging the answers (only with ``--lm``).

Two small DSPy signatures: :class:`AnswerFromMemories` answers a question from the retrieved turns (with their
dates, so relative times resolve), and :class:`JudgeAnswer` is the generous CORRECT/WRONG judge of the Mem0
paper (same topic / same date in any format counts). Lexical scores need no LM: token F1 and BLEU-1 as in the
LoCoMo evaluation. Category 5 (adversarial) scores abstention: the answer must say the information is absent.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import exp
from typing import Any

from ..errors import LLMError
from .dataset import Conversation, Question, Turn
from .metrics import count_tokens

ABSTAIN = "Not mentioned in the conversation."
_ABSTAIN_RE = re.compile(r"not mentioned|no information|not (?:stated|specified|discussed|known)|unknown|"
                         r"does not say|doesn't say|cannot be determined|no mention", re.IGNORECASE)


def normalize_answer(text: str) -> list[str]:
    """LoCoMo/SQuAD normalisation: lower case, no punctuation, no articles, split on whitespace."""
    text = text.lower().replace(",", "")
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return text.split()


def token_f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction), normalize_answer(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def bleu1(prediction: str, gold: str) -> float:
    """Unigram BLEU with the brevity penalty."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if not p or not g:
        return 0.0
    overlap = sum((Counter(p) & Counter(g)).values())
    precision = overlap / len(p)
    penalty = 1.0 if len(p) > len(g) else exp(1 - len(g) / len(p))
    return penalty * precision


def is_abstention(answer: str) -> bool:
    return bool(_ABSTAIN_RE.search(answer))


def _signatures() -> tuple[Any, Any]:
    import dspy

    class AnswerFromMemories(dspy.Signature):  # type: ignore[misc]
        """Answer the question about the people in the conversation using only the memories (dated turns).
        Resolve relative times ("yesterday", "last week") against each memory's date. Answer briefly (a few
        words). If the memories do not contain the answer, reply exactly: Not mentioned in the conversation."""

        memories: str = dspy.InputField()
        question: str = dspy.InputField()
        answer: str = dspy.OutputField()

    class JudgeAnswer(dspy.Signature):  # type: ignore[misc]
        """Label the generated answer CORRECT or WRONG against the gold answer. Be generous: an answer that
        touches the same topic or names the same time period (in any format) as the gold answer is CORRECT."""

        question: str = dspy.InputField()
        gold_answer: str = dspy.InputField()
        generated_answer: str = dspy.InputField()
        label: str = dspy.OutputField(desc="CORRECT or WRONG")

    return AnswerFromMemories, JudgeAnswer


def format_memories(ranked: Sequence[Sequence[str]], turns: Mapping[str, Turn], k: int) -> str:
    """The top-k retrieved items as dated lines, turns of one item together in conversation order."""
    lines: list[str] = []
    for item in ranked[:k]:
        for tid in item:
            t = turns.get(tid)
            if t is not None:
                when = t.observed_at.strftime("%d %B %Y") if t.observed_at else "unknown date"
                lines.append(f"[{when}] {t.memory_text()}")
        lines.append("")
    return "\n".join(lines).strip()


@dataclass
class AnswerScorer:
    """Answers and judges questions with one DSPy LM (``lm`` is a ``dspy.LM`` or any dspy-compatible LM)."""

    lm: Any
    k: int = 10

    def __post_init__(self) -> None:
        import dspy

        answer_sig, judge_sig = _signatures()
        self._answer = dspy.Predict(answer_sig)
        self._judge = dspy.Predict(judge_sig)
        self._dspy = dspy

    def score(self, question: Question, ranked: Sequence[Sequence[str]], turns: Mapping[str, Turn]) -> dict[str, Any]:
        memories = format_memories(ranked, turns, self.k)
        try:
            with self._dspy.context(lm=self.lm):
                answer = str(self._answer(memories=memories, question=question.text).answer).strip()
                out: dict[str, Any] = {"question_id": question.id, "category": question.category, "answer": answer,
                                       "tokens": count_tokens(memories) + count_tokens(question.text)}
                if question.category == "adversarial":
                    out["abstained"] = float(is_abstention(answer))
                    return out
                gold = question.answer or ""
                label = str(self._judge(question=question.text, gold_answer=gold, generated_answer=answer).label)
        except Exception as exc:  # an LM failure must name the question; nothing is swallowed
            raise LLMError(f"answering {question.id} failed: {exc}", question_id=question.id) from exc
        out.update(judge=float("CORRECT" in label.upper() and "WRONG" not in label.upper()),
                   f1=token_f1(answer, gold), bleu1=bleu1(answer, gold))
        return out


def answer_all(
    scorer: AnswerScorer, conversations: Sequence[Conversation], ranked: Mapping[str, Sequence[Sequence[str]]],
) -> dict[str, Any]:
    """Answer every question that has a ranking (and LoCoMo category 5), then aggregate per category."""
    rows: list[dict[str, Any]] = []
    for conv in conversations:
        turns = {t.id: t for t in conv.turns}
        for q in conv.questions:
            if q.id in ranked:
                rows.append(scorer.score(q, ranked[q.id], turns))
    per_cat: dict[str, dict[str, float]] = {}
    for cat in sorted({r["category"] for r in rows} | {"overall"}):
        rs = [r for r in rows if cat == "overall" or r["category"] == cat]
        keys = ("judge", "f1", "bleu1", "tokens", "abstained")
        per_cat[cat] = {key: statistics.fmean(r[key] for r in rs if key in r) for key in keys
                        if any(key in r for r in rs)}
        per_cat[cat]["n"] = float(len(rs))
    return {"per_category": per_cat, "rows": rows}
