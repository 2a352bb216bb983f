"""OpenAI Agents SDK: a ``Session`` on remem episodes and memory ``function_tool``\\ s bound to a user.

Install ``remem[openai-agents]``.

* :class:`RememSession` implements the SDK's ``Session`` protocol (``get_items``, ``add_items``, ``pop_item``,
  ``clear_session``): ``Runner.run(agent, "...", session=RememSession(memory, user_id="alice",
  session_id="chat-1"))``. Each conversation message (user, assistant, system/developer text) is one ``episode``
  memory of that user and session, in order, with the SDK's own item kept in its metadata so ``get_items`` gives
  back exactly what was added. Tool calls, tool outputs and reasoning items are not kept: they are not things
  the user said, a tool's output would echo memories back into memory, and the history without them is still a
  valid model input. ``pop_item``/``clear_session`` soft-delete. ``infer=True`` also runs remem's LLM pipeline
  on each new batch of messages (facts with sources; it needs ``Memory(lm=...)``).
* :func:`memory_tools` returns ``search_memory(query)`` and ``save_memory(text)`` as ``FunctionTool``\\ s whose
  user is fixed when the host builds them: the JSON schema the model sees has no user field. A
  :class:`remem.RememError` (an empty query, a lone surrogate) is the tool's output, ``invalid_input: query is
  empty``, so the model sees what was wrong and the run goes on (the SDK's default would hide the reason);
  any other exception gets the SDK's default message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agents import FunctionTool, RunContextWrapper, function_tool
from agents.items import TResponseInputItem
from agents.tool import default_tool_error_function

from ..errors import RememError
from ..memory.core import Memory
from ..validation import check_text, check_user_id
from ._render import render_hits, render_saved
from ._transcript import Role, Transcript, Turn

SOURCE = "openai_agents"
_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


class RememSession:
    """An Agents SDK session whose items are remem episodes of ``(user_id, session_id)``."""

    session_settings: Any = None

    def __init__(self, memory: Memory, *, user_id: str, session_id: str, infer: bool = False) -> None:
        self.transcript = Transcript(memory, user_id=user_id, session_id=session_id, source=SOURCE, infer=infer)
        self.session_id = session_id

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The kept items, oldest first; ``limit``: only the latest ``limit`` (still oldest first)."""
        records = await asyncio.to_thread(self.transcript.records, limit)
        out: list[Any] = []
        for r in records:
            payload = self.transcript.payload(r)
            out.append(payload if payload is not None else {"role": r.role or "user", "content": r.text})
        return out

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Keep the message items that carry text (all validated before any is written)."""
        turns = [t for t in (_turn(i) for i in items) if t is not None]
        await asyncio.to_thread(self.transcript.append, turns)

    async def pop_item(self) -> TResponseInputItem | None:
        record = await asyncio.to_thread(self.transcript.pop)
        if record is None:
            return None
        payload = self.transcript.payload(record)
        item: Any = payload if payload is not None else {"role": record.role or "user", "content": record.text}
        return item  # type: ignore[no-any-return]

    async def clear_session(self) -> None:
        await asyncio.to_thread(self.transcript.clear)


def _turn(item: Any) -> Turn | None:
    """A message item as a turn; None for tool calls, tool outputs, reasoning and empty messages."""
    data: Any = item.model_dump(mode="json", exclude_unset=True) if hasattr(item, "model_dump") else item
    if not isinstance(data, dict) or data.get("type", "message") != "message":
        return None
    role = _ROLES.get(str(data.get("role")))
    if role is None:
        return None
    content = data.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(p.get("text") or p.get("refusal") or "" for p in content
                         if isinstance(p, dict) and isinstance(p.get("text") or p.get("refusal"), str))
    else:
        text = ""
    if not text.strip():
        return None
    payload: dict[str, Any] = json.loads(json.dumps(data, default=str))
    item_id = data.get("id") if isinstance(data.get("id"), str) else None
    return Turn(role=role, text=text.strip(), id=item_id, payload=payload)


def memory_tools(memory: Memory, *, user_id: str, limit: int = 5) -> list[FunctionTool]:
    """``[search_memory, save_memory]`` as function tools bound to ``user_id`` (validated now)."""
    user = check_user_id(user_id)

    async def search_memory(query: str) -> str:
        """Search the user's long-term memory (facts and past conversations).

        Args:
            query: What to look for.
        """
        return render_hits(await asyncio.to_thread(memory.search, query, user_id=user, limit=limit))

    async def save_memory(text: str) -> str:
        """Save one fact about the user to long-term memory so later conversations can use it.

        Args:
            text: The fact, as a self-contained sentence (e.g. "Alice is vegan").
        """
        check_text(text, memory.settings.max_text_chars, "text")  # named as the tool's argument
        return render_saved(await asyncio.to_thread(memory.add, text, user_id=user, actor=SOURCE))

    return [function_tool(search_memory, failure_error_function=tool_error),
            function_tool(save_memory, failure_error_function=tool_error)]


def tool_error(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """What the model reads when a memory tool fails: ``"<code>: <message>"`` for a remem error (its messages
    quote no memory text), the SDK's default for anything else."""
    if isinstance(error, RememError):
        return f"{error.code}: {error.message}"
    return default_tool_error_function(ctx, error)
