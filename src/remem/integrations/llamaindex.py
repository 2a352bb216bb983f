"""LlamaIndex: a memory block that puts a user's remem memories into the agent's context.

Install ``remem[llamaindex]`` (``llama-index-core``)::

    from llama_index.core.memory import Memory as LlamaMemory
    chat_memory = LlamaMemory.from_defaults(session_id="chat-1", memory_blocks=[
        RememMemoryBlock(memory=memory, user_id="alice")])
    await agent.run("What should I cook tonight?", memory=chat_memory)

* **Reading** (``aget``): the latest user message is the query; the block returns the user's most relevant
  memories (remem's hybrid search, ``limit`` hits, at most about ``max_tokens`` tokens at 4 characters a token),
  one dated line each, which LlamaIndex's ``Memory`` inserts into the system message (or the user message:
  its ``insert_method``). When :class:`remem.Memory` has ``context()`` the block asks it instead
  (``memory.context(query, user_id=..., max_tokens=...)``), feature-detected, so nothing changes here then.
* **Writing** (``aput``): messages that LlamaIndex's ``Memory`` flushes out of its short-term window are stored
  as ``episode`` memories of the user, in order, in a remem session named after LlamaIndex's ``session_id``.
  Tool messages and empty messages are left out.
* The user is fixed by the host when it builds the block; nothing a model says can change it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory.memory import BaseMemoryBlock
from pydantic import ConfigDict, Field

from ..memory.core import Memory
from ..models import SearchHit
from ..validation import check_user_id
from ._render import render_hits
from ._transcript import Role, Transcript, Turn

SOURCE = "llamaindex"
DEFAULT_SESSION = "llamaindex"
CHARS_PER_TOKEN = 4
_ROLES: dict[str, Role] = {MessageRole.USER.value: "user", MessageRole.ASSISTANT.value: "assistant",
                           MessageRole.SYSTEM.value: "system"}


class RememMemoryBlock(BaseMemoryBlock[str]):
    """A ``llama_index.core.memory`` block backed by one remem user's long-term memory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default="remem", description="The block's name in LlamaIndex's memory template.")
    memory: Memory = Field(exclude=True)
    user_id: str
    limit: int = Field(default=5, ge=1, le=100, description="Most memories to put into the context.")
    max_tokens: int = Field(default=500, ge=1, description="Rough token budget of the block's text.")

    def __init__(self, **data: Any) -> None:
        check_user_id(data.get("user_id"))  # remem's InvalidUserIdError, before pydantic wraps it
        super().__init__(**data)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        query = next((m.content for m in reversed(messages or []) if m.role == MessageRole.USER and m.content),
                     None)
        if not query or not query.strip():
            return ""
        return await asyncio.to_thread(self.context, query)

    def context(self, query: str) -> str:
        """The text this block contributes for ``query`` ("" when nothing matches)."""
        build = getattr(self.memory, "context", None)
        if callable(build):  # Memory.context(), once it exists: the library decides what fits
            result = build(query, user_id=self.user_id, max_tokens=self.max_tokens)
            return str(getattr(result, "text", result))
        hits = self.memory.search(query, user_id=self.user_id, limit=self.limit)
        budget = self.max_tokens * CHARS_PER_TOKEN
        kept: list[SearchHit] = []
        for hit in hits:
            budget -= len(hit.record.text) + 16  # the line's number and date
            if budget < 0 and kept:
                break
            kept.append(hit)
        return render_hits(kept) if kept else ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        by_session: defaultdict[str, list[Turn]] = defaultdict(list)
        for m in messages:
            role = _ROLES.get(str(getattr(m.role, "value", m.role)))
            text = (m.content or "").strip()
            if role is None or not text:
                continue
            session = m.additional_kwargs.get("session_id") or DEFAULT_SESSION
            by_session[str(session)].append(Turn(role=role, text=text))
        for session, turns in by_session.items():
            transcript = Transcript(self.memory, user_id=self.user_id, session_id=session, source=SOURCE)
            await asyncio.to_thread(transcript.append, turns)
