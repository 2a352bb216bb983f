"""The LM confirmation step of entity resolution (``dspy.Predict(EntityMatch)``), for ambiguous mentions only.

The model sees the mention (name, type, hint, the sentence it came from) and at most three candidates as small
integers with their hints and a few known facts, and answers a candidate's number or -1 (a new entity). An
answer outside that range is retried; after the retries :class:`~remem.errors.ExtractionError` (the pipeline
job stays queued). Uses the LM of the current DSPy context.
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from ..errors import ExtractionError
from ..pipeline.lm import RETRYABLE, raw_output_of
from .resolve import Candidate, Mention
from .signatures import EntityMatch


def _describe(name: str, type_: str | None, hint: str | None) -> str:
    return f"{name} ({type_ or 'unknown type'})" + (f" — {hint}" if hint else "")


class LMConfirm:
    """A :data:`remem.graph.resolve.Confirm` backed by the LM; ``calls`` counts the questions asked."""

    def __init__(self, retries: int = 2) -> None:
        self.predict = dspy.Predict(EntityMatch)
        self.retries = retries
        self.calls = 0

    def __call__(self, mention: Mention, candidates: Sequence[Candidate]) -> int | None:
        said = _describe(mention.name, mention.type, mention.hint) + (f"; said in: {mention.context}"
                                                                       if mention.context else "")
        lines = []
        for i, c in enumerate(candidates):
            facts = "; ".join(c.facts) if c.facts else "no known facts"
            lines.append(f"{i}: {_describe(c.entity.name, c.entity.type, c.entity.hint)}; {facts}")
        self.calls += 1
        last: BaseException | None = None
        for _ in range(self.retries + 1):
            try:
                answer = int(self.predict(mention=said, candidates="\n".join(lines)).match)
                if answer == -1:
                    return None
                if 0 <= answer < len(candidates):
                    return answer
                raise ValueError(f"match {answer} is not a candidate number (0-{len(candidates) - 1}) or -1")
            except RETRYABLE as exc:
                last = exc
        assert last is not None
        raise ExtractionError(f"entity resolution failed after {self.retries + 1} attempts ({type(last).__name__})",
                              raw_output=raw_output_of(last)) from last
