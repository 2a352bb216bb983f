"""Pydantic AI: memory tools that read the user from the run's dependencies (``RunContext.deps``).

Install ``remem[pydantic-ai]``::

    agent = Agent(model, deps_type=RememDeps, toolsets=[memory_toolset])
    agent.run_sync("I'm vegan, remember that", deps=RememDeps(memory=memory, user_id="alice"))

The host puts the :class:`remem.Memory` and the user id in the deps of each run; the tools' parameters (what the
model fills in) are only ``query`` and ``text``, so a model cannot reach another user. A host with its own deps
type subclasses :class:`RememDeps` (a dataclass) and adds its fields.

A bad argument never ends the run by itself: a :class:`remem.RememError` (an empty query, a lone surrogate, a
text over ``REMEM_MAX_TEXT_CHARS``) becomes Pydantic AI's ``ModelRetry``, so the model reads
``invalid_input: query is empty`` in a retry prompt and can call again or answer. As for every Pydantic AI
tool, a model that keeps failing past the toolset's ``max_retries`` (1 by default) ends the run with
``UnexpectedModelBehavior``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic_ai import FunctionToolset, ModelRetry, RunContext

from ..errors import RememError
from ..memory.core import Memory
from ..validation import check_text, check_user_id
from ._render import render_hits, render_saved

SOURCE = "pydantic_ai"


@dataclass
class RememDeps:
    """What the memory tools need from a run: the memory and the user (checked: ``InvalidUserIdError``)."""

    memory: Memory
    user_id: str
    search_limit: int = 5

    def __post_init__(self) -> None:
        check_user_id(self.user_id)


async def search_memory(ctx: RunContext[RememDeps], query: str) -> str:
    """Search the user's long-term memory (facts and past conversations).

    Args:
        query: What to look for.
    """
    deps = ctx.deps
    try:
        hits = await asyncio.to_thread(deps.memory.search, query, user_id=deps.user_id, limit=deps.search_limit)
    except RememError as exc:
        raise ModelRetry(f"{exc.code}: {exc.message}") from exc
    return render_hits(hits)


async def save_memory(ctx: RunContext[RememDeps], text: str) -> str:
    """Save one fact about the user to long-term memory so later conversations can use it.

    Args:
        text: The fact, as a self-contained sentence (e.g. "Alice is vegan").
    """
    deps = ctx.deps
    try:
        check_text(text, deps.memory.settings.max_text_chars, "text")  # named as the tool's argument
        result = await asyncio.to_thread(deps.memory.add, text, user_id=deps.user_id, actor=SOURCE)
    except RememError as exc:
        raise ModelRetry(f"{exc.code}: {exc.message}") from exc
    return render_saved(result)


#: ``search_memory`` and ``save_memory`` as one toolset:
#: ``Agent(..., deps_type=RememDeps, toolsets=[memory_toolset])``.
memory_toolset: FunctionToolset[RememDeps] = FunctionToolset([search_memory, save_memory], id="remem-memory")
