"""LangChain tools and chat history on remem.

Install ``remem[langchain]`` (``langchain-core``). Two ``BaseTool`` classes, named for the model
``search_memory`` and ``save_memory``, and a ``BaseChatMessageHistory``:

* :class:`SearchMemoryTool` / :class:`SaveMemoryTool` are bound to one user when the host builds them
  (``memory_tools(memory, user_id="alice")``). Their argument schemas have no user field: a model can only
  reach the user the host chose. Search is remem's hybrid search; save stores the text as a ``fact`` (an exact
  duplicate of a live memory is not stored twice and answers "Already known.").
  A bad argument never ends the agent run: a :class:`remem.RememError` (an empty query, a 1,000-character
  category, a lone surrogate) becomes a ``ToolException`` that LangChain hands back to the model as the tool's
  output (``handle_tool_error=True``: a ``ToolMessage`` with ``status="error"`` reading ``invalid_input: query is
  empty``), and so does an argument that fails the schema (``handle_validation_error``).
* :class:`RememChatMessageHistory` keeps a session's messages as ``episode`` memories (one per message, in
  order; see :mod:`remem.integrations._transcript`), so they are searchable long-term memory too. Human, AI and
  system messages with text are kept (the full message, via ``message_to_dict``); tool messages and an AI
  message's tool calls are not (a history without the call/result pairs stays valid for any chat model).
  ``clear()`` soft-deletes the session's episodes. ``infer=True`` also runs remem's LLM pipeline on new messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from ..errors import RememError
from ..memory.core import Memory
from ..validation import check_categories, check_text, check_user_id
from ._render import render_hits, render_saved
from ._transcript import Role, Transcript, Turn

SOURCE = "langchain"


class SearchMemoryInput(BaseModel):
    query: str = Field(description="What to look for in the user's long-term memory.")


class SaveMemoryInput(BaseModel):
    text: str = Field(description="One self-contained fact about the user to remember, e.g. 'Alice is vegan'.")
    categories: list[str] = Field(default_factory=list, description="Optional labels, e.g. ['preferences'].")


def tool_error(exc: RememError) -> ToolException:
    """The ``ToolException`` a model sees for a remem error: ``"<code>: <message>"``."""
    return ToolException(f"{exc.code}: {exc.message}")


def _schema_error(exc: Any) -> str:
    """The tool output for arguments that fail the tool's schema (pydantic's message, one line per field)."""
    if isinstance(exc, PydanticValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return f"invalid_input: {problems}"
    return f"invalid_input: {exc}"


class _UserBoundTool(BaseTool):
    """A tool bound by the host to one remem user (the model never names the user); remem errors and schema
    errors are tool output for the model, not exceptions of the run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory = Field(exclude=True)
    user_id: str
    handle_tool_error: bool | str | Callable[[ToolException], Any] | None = True
    handle_validation_error: bool | str | Callable[[Any], str] | None = _schema_error

    def __init__(self, **data: Any) -> None:
        check_user_id(data.get("user_id"))  # remem's InvalidUserIdError, before pydantic wraps it
        super().__init__(**data)


class SearchMemoryTool(_UserBoundTool):
    """``search_memory(query)``: the user's most relevant memories as numbered, dated lines."""

    name: str = "search_memory"
    description: str = ("Search the user's long-term memory (facts and past conversations). "
                        "Returns the most relevant memories, newest knowledge first when equally relevant.")
    args_schema: type[BaseModel] = SearchMemoryInput
    limit: int = 5

    def _run(self, query: str, run_manager: CallbackManagerForToolRun | None = None) -> str:
        try:
            return render_hits(self.memory.search(query, user_id=self.user_id, limit=self.limit))
        except RememError as exc:
            raise tool_error(exc) from exc


class SaveMemoryTool(_UserBoundTool):
    """``save_memory(text, categories)``: store one fact for the user."""

    name: str = "save_memory"
    description: str = ("Save one fact about the user to long-term memory so later conversations can use it. "
                        "Write it as a self-contained sentence.")
    args_schema: type[BaseModel] = SaveMemoryInput

    def _run(self, text: str, categories: Sequence[str] = (), run_manager: CallbackManagerForToolRun | None = None
             ) -> str:
        try:
            check_text(text, self.memory.settings.max_text_chars, "text")  # named as the tool's argument
            result = self.memory.add(text, user_id=self.user_id, categories=check_categories(list(categories)),
                                     actor=SOURCE)
        except RememError as exc:
            raise tool_error(exc) from exc
        return render_saved(result)


def memory_tools(memory: Memory, *, user_id: str, limit: int = 5) -> list[BaseTool]:
    """``[search_memory, save_memory]`` bound to ``user_id`` (validated now: ``InvalidUserIdError``)."""
    return [SearchMemoryTool(memory=memory, user_id=user_id, limit=limit),
            SaveMemoryTool(memory=memory, user_id=user_id)]


_ROLES: dict[type[BaseMessage], Role] = {HumanMessage: "user", AIMessage: "assistant", SystemMessage: "system"}


class RememChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history whose messages are remem episodes of ``(user_id, session_id)``."""

    def __init__(self, memory: Memory, *, user_id: str, session_id: str, infer: bool = False) -> None:
        self.transcript = Transcript(memory, user_id=user_id, session_id=session_id, source=SOURCE, infer=infer)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's kept messages, oldest first."""
        out: list[BaseMessage] = []
        for record in self.transcript.records():
            payload = self.transcript.payload(record)
            if payload is not None:
                out.extend(messages_from_dict([payload]))
            else:  # an episode of this session written by something else: shown by its role
                role = record.role or "user"
                cls = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}.get(role)
                out.append(cls(content=record.text) if cls else ChatMessage(role=role, content=record.text))
        return out

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store the messages that carry text (see the module docstring for what is left out)."""
        turns = [t for t in (_turn(m) for m in messages) if t is not None]
        self.transcript.append(turns)

    def clear(self) -> None:
        self.transcript.clear()


def _turn(message: BaseMessage) -> Turn | None:
    text = message.text.strip()
    role: Role | None = next((r for cls, r in _ROLES.items() if isinstance(message, cls)), None)
    if role is None and isinstance(message, ChatMessage) and message.role in ("user", "assistant", "system"):
        role = message.role  # type: ignore[assignment]
    if role is None or not text:
        return None
    kept: BaseMessage = message
    if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
        kept = AIMessage(content=text, id=message.id, name=message.name)
    payload: dict[str, Any] = message_to_dict(kept)
    return Turn(role=role, text=text, id=message.id, speaker=message.name, payload=payload)
