"""A per-add budget of LM calls and tokens that no step of the pipeline can exceed.

Every LM call of the pipeline goes through one of remem's DSPy adapters (:mod:`remem.pipeline.structured`),
which calls :func:`charge` first: when the add's budget is spent — ``max_calls`` calls made, or ``max_tokens``
prompt + completion tokens used — no further call is made and :class:`~remem.errors.BudgetExceededError` is
raised instead. The pipeline turns that into its documented rule (see :mod:`remem.pipeline.ingest`): facts
the maintenance agent has not handled yet are added as they are (the writer's exact/near duplicate check still
applies), so a tool-call storm ends at the budget and nothing is dropped; a budget spent before extraction
finished leaves the turn in the pending queue.

The token limit is checked *before* a call, from the usage of the calls already made: one call can overshoot
it by its own size. Calls and tokens are counted by :func:`remem.pipeline.lm.meter` (DSPy callbacks and usage
tracking), failed calls included.

Defaults: ``max_calls=12`` (extraction with its two retries, then a maintenance run of up to nine steps),
``max_tokens=60_000`` (about twelve calls of 5,000 tokens: a ChatAdapter prompt with its instructions, six
context turns and a short trajectory measures 1,500–4,000 tokens with the scripted LM's ``len/4`` counter).
Configure them with ``Pipeline(budget=LMBudget(...))`` or ``REMEM_LM_MAX_CALLS`` / ``REMEM_LM_MAX_TOKENS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import BudgetExceededError, ValidationError

if TYPE_CHECKING:
    from .lm import UsageMeter


@dataclass(frozen=True)
class LMBudget:
    """At most ``max_calls`` LM calls and ``max_tokens`` prompt + completion tokens per add."""

    max_calls: int = 12
    max_tokens: int = 60_000

    def __post_init__(self) -> None:
        if self.max_calls < 1:
            raise ValidationError("max_calls must be at least 1", max_calls=self.max_calls)
        if self.max_tokens < 1:
            raise ValidationError("max_tokens must be at least 1", max_tokens=self.max_tokens)


@dataclass
class _Spending:
    budget: LMBudget
    meter: UsageMeter
    exhausted: bool = False


_CURRENT: ContextVar[_Spending | None] = ContextVar("remem_lm_budget", default=None)


@contextmanager
def spending(budget: LMBudget | None, meter: UsageMeter) -> Iterator[_Spending | None]:
    """Charge the LM calls made in this block (this thread/task) to ``budget``; ``None``: unbounded."""
    if budget is None:
        yield None
        return
    state = _Spending(budget, meter)
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def charge() -> None:
    """Called before each LM call: raises :class:`BudgetExceededError` when the current budget is spent."""
    state = _CURRENT.get()
    if state is None:
        return
    usage = state.meter.usage
    tokens = usage.prompt_tokens + usage.completion_tokens
    if usage.calls >= state.budget.max_calls or tokens >= state.budget.max_tokens:
        state.exhausted = True
        raise BudgetExceededError(
            f"LM budget of this add is spent ({usage.calls}/{state.budget.max_calls} calls, "
            f"{tokens}/{state.budget.max_tokens} tokens)",
            calls=usage.calls, tokens=tokens, max_calls=state.budget.max_calls, max_tokens=state.budget.max_tokens,
        )
