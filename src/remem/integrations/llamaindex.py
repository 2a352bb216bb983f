"""LlamaIndex: a memory block that puts a user's remem memories into the agent's context.

Install ``remem[llamaindex]`` (``llama-index-core``)::

    from llama_index.core.memory import Memory as LlamaMemory
    chat_memory = LlamaMemory.from_defaults(session_id="chat-1", memory_blocks=[
        RememMemoryBlock(memory=memory, user_id="alice")])
    await agent.run("What should I cook tonight?", memory=chat_memory)

* **Reading** (``aget``): the latest user message is the query; the block's text is
  :meth:`remem.Memory.context` for it within ``max_tokens`` cl100k tokens — Markdown, ``## About the user``
  (core facts) then ``## Relevant memories`` (dated facts and conversation excerpts) — which LlamaIndex's
  ``Memory`` inserts into the system message (or the user message: its ``insert_method``). A message remem
  cannot search (over ``REMEM_MAX_TEXT_CHARS``, a NUL, a lone surrogate) gives no block (and a warning in the
  log, without the text) rather than ending the agent's run.
* **Writing** (``aput``): messages that LlamaIndex's ``Memory`` flushes out of its short-term window are stored
  as ``episode`` memories of the user, in order, in a remem session named after LlamaIndex's ``session_id``.
  Tool messages and empty messages are left out; so is a message remem cannot store (the same rules as a
  query), with a warning in the log, so one bad message does not end the run.
* The user is fixed by the host when it builds the block; nothing a model says can change it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory.memory import BaseMemoryBlock
from pydantic import ConfigDict, Field

from ..errors import ValidationError
from ..memory.core import Memory
from ..validation import check_text, check_user_id
from ._transcript import Role, Transcript, Turn

SOURCE = "llamaindex"
DEFAULT_SESSION = "llamaindex"
log = logging.getLogger(__name__)
_ROLES: dict[str, Role] = {MessageRole.USER.value: "user", MessageRole.ASSISTANT.value: "assistant",
                           MessageRole.SYSTEM.value: "system"}


class RememMemoryBlock(BaseMemoryBlock[str]):
    """A ``llama_index.core.memory`` block backed by one remem user's long-term memory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default="remem", description="The block's name in LlamaIndex's memory template.")
    memory: Memory = Field(exclude=True)
    user_id: str
    max_tokens: int = Field(default=500, ge=1, le=200_000, description="Token budget of the block's text "
                            "(cl100k tokens, as Memory.context counts them).")

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
        """The text this block contributes for ``query`` (``Memory.context(...).text``; "" when nothing matches
        or the query is not searchable)."""
        try:
            return self.memory.context(query, user_id=self.user_id, max_tokens=self.max_tokens).text
        except ValidationError as exc:
            log.warning("remem memory block: the user message was not searched (%s)", exc.message)
            return ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        by_session: defaultdict[str, list[Turn]] = defaultdict(list)
        for m in messages:
            role = _ROLES.get(str(getattr(m.role, "value", m.role)))
            text = (m.content or "").strip()
            if role is None or not text:
                continue
            try:
                check_text(text, self.memory.settings.max_text_chars, "message")
            except ValidationError as exc:
                log.warning("remem memory block: a %s message was not stored (%s)", role, exc.message)
                continue
            session = m.additional_kwargs.get("session_id") or DEFAULT_SESSION
            by_session[str(session)].append(Turn(role=role, text=text))
        for session, turns in by_session.items():
            transcript = Transcript(self.memory, user_id=self.user_id, session_id=session, source=SOURCE)
            await asyncio.to_thread(transcript.append, turns)
