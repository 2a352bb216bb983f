"""The chat agent: ``dspy.ReAct(ResponseGenerator)`` with memory tools bound to the current user.

Per reply the agent sees, in its prompt, the memory block of :meth:`remem.Memory.context` for the user's message
(at most ``context_tokens`` tokens: the core facts — facts in ``core_categories``, newest first, at most
``core_limit``; with the Markdown store, the memories of the user's ``profile.md`` — then the most relevant facts
and dated excerpts of past turns), a bounded transcript (the last ``window`` messages), the question and the time.
The time is ``reply(now=...)`` (default: now, UTC): an aware ``now`` is the user's local time, shown to the LM
with its offset; dates in tool arguments and results are days of that calendar, and time expressions in search
texts ("yesterday") are resolved against it.
It may call ``fetch_similar_memories``, ``search_by_category`` and ``search_by_time`` — closures over the
user id, so no argument can reach another user — at most ``max_tool_calls`` times; further calls answer
"limit reached". It answers and says whether the turn is worth remembering (``save_memory``). If so, the turn
is queued durably and stored as an episode *before* extraction + maintenance run, here or in a background
thread (``background=True``): a crash or a bad LM output leaves it in the pending queue, never lost. If not,
the turn is still stored as an episode (searchable, never lost) but no facts are extracted from it.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ConfigurationError, LLMError, RememError
from ..models import Context, LLMUsage, MemoryEvent, MemoryRecord, Message, SearchHit, utcnow
from ..parts import HasParts, parts_of
from ..reads import list_page
from ..retrieval.context import CORE_CATEGORIES, DEFAULT_CONTEXT_OPTIONS, build_context, check_budget
from ..retrieval.search import DEFAULT_OPTIONS, search_memories
from ..timeexpr import aware, parse_date, stamp
from ..validation import check_agent_args, check_reply_args, check_user_id
from .ingest import Pipeline
from .lm import RETRYABLE, LMSpec, meter, raw_output_of, resolve_lm
from .react import GuardedReAct, tool_calls
from .signatures import ResponseGenerator


class ToolCall(BaseModel):
    """One memory search the agent made: the tool, its arguments, and what it found (or the error)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    found: list[str] = Field(default_factory=list, description="ids of the memories returned")
    texts: list[str] = Field(default_factory=list, description="texts of the memories returned")
    error: str | None = None


class AgentReply(BaseModel):
    """What :meth:`Agent.reply` returns."""

    response: str
    save_memory: bool
    tool_calls: list[ToolCall] = Field(default_factory=list)
    events: list[MemoryEvent] = Field(default_factory=list, description="memory changes made after the turn")
    job_id: str | None = Field(default=None, description="pending-queue job of the turn (when save_memory)")
    turn_id: str | None = Field(default=None, description="id of the user's turn, stored as an episode memory")
    memory_error: str | None = Field(default=None, description="extraction/maintenance failure; turn queued")
    usage: LLMUsage = Field(default_factory=LLMUsage)
    context_ids: list[str] = Field(default_factory=list, description="ids of the memories shown in the prompt")
    context_tokens: int = Field(default=0, description="cl100k tokens of the memory block in the prompt")


def _format_hits(records: Sequence[MemoryRecord], tz: tzinfo) -> str:
    """One line per memory: ``- (YYYY-MM-DD) …``, the date on the user's calendar (``tz``)."""
    if not records:
        return "no memories found"
    lines = []
    for r in records:
        when = (r.observed_at or r.created_at).astimezone(tz).date().isoformat()
        who = f"{r.speaker or r.role or 'user'} said: " if r.kind == "episode" else ""
        cats = f" [{', '.join(r.categories)}]" if r.categories else ""
        lines.append(f"- ({when}) {who}{r.text}{cats}")
    return "\n".join(lines)


class Agent:
    """A chat agent with long-term memory: ``Agent(memory, lm=...)``, then ``agent.reply(user_id, text)``."""

    def __init__(
        self,
        memory: HasParts,
        lm: LMSpec | None = None,
        *,
        api_base: str | None = None,
        window: int = 12,
        core_limit: int = 8,
        core_categories: Sequence[str] = CORE_CATEGORIES,
        context_tokens: int = 1000,
        max_tool_calls: int = 3,
        search_limit: int = 5,
        background: bool = False,
        instructions: str | None = None,
        retries: int = 2,
    ) -> None:
        existing: Pipeline | None = getattr(memory, "pipeline", None)
        if lm is None and existing is None:
            raise ConfigurationError("Agent needs a language model: Agent(memory, lm='openai/gpt-4o-mini')")
        check_agent_args(window=window, core_limit=core_limit, core_categories=core_categories,
                         max_tool_calls=max_tool_calls, search_limit=search_limit, background=background,
                         instructions=instructions, retries=retries)
        self.parts = parts_of(memory)
        self.lm = resolve_lm(lm, api_base=api_base) if lm is not None or existing is None else existing.lm
        self.pipeline: Pipeline = existing if existing is not None else Pipeline(memory, self.lm)
        self.window, self.core_limit, self.core_categories = window, core_limit, list(core_categories)
        self.context_tokens = check_budget(context_tokens)
        self.context_options = DEFAULT_CONTEXT_OPTIONS.with_(core_limit=core_limit,
                                                             core_categories=tuple(core_categories))
        self.max_tool_calls, self.search_limit, self.background, self.retries = (
            max_tool_calls, search_limit, background, retries)
        base = instructions or ResponseGenerator.instructions
        self.signature = ResponseGenerator.with_instructions(inspect.cleandoc(base))
        self._transcripts: dict[str, deque[Message]] = {}
        self._lock = threading.Lock()

    # -- state -------------------------------------------------------------------------------------------
    def transcript(self, user_id: str) -> list[Message]:
        with self._lock:
            return list(self._transcripts.get(user_id, ()))

    def reset(self, user_id: str) -> None:
        with self._lock:
            self._transcripts.pop(user_id, None)

    def _remember_turn(self, user_id: str, *messages: Message) -> None:
        with self._lock:
            self._transcripts.setdefault(user_id, deque(maxlen=self.window)).extend(messages)

    def core_facts(self, user_id: str) -> list[MemoryRecord]:
        # The Markdown store keeps them in the user's profile.md (hand edits included): the agent reads it there.
        profile = getattr(self.parts.store, "profile", None)
        if callable(profile):
            records: list[MemoryRecord] = profile(user_id, limit=self.core_limit)
            return records
        page = list_page(self.parts.store, user_id=user_id, kinds=["fact"], categories=self.core_categories,
                         limit=self.core_limit)
        return page.items

    def context(self, user_id: str, text: str, now: datetime | None = None) -> Context:
        """The memory block the agent's prompt gets for a message (:meth:`remem.Memory.context`)."""
        opts = self.context_options
        if now is not None:
            opts = opts.with_(search=opts.search.with_(reference_time=now))
        return build_context(functools.partial(search_memories, self.parts), self.parts.store, text,
                             user_id=user_id, max_tokens=self.context_tokens, options=opts)

    # -- tools -------------------------------------------------------------------------------------------
    def _tools(self, user_id: str, calls: list[ToolCall], now: datetime) -> list[Callable[..., str]]:
        tz = now.tzinfo
        assert tz is not None
        used = [0]  # searches run in this reply (calls rejected for bad arguments do not count)

        def run(name: str, args: dict[str, Any], search_text: str, **filters: Any) -> str:
            if used[0] >= self.max_tool_calls:
                return "limit reached: no more memory searches; answer with what you have"
            used[0] += 1
            call = ToolCall(name=name, args=args)
            calls.append(call)
            try:
                records: list[MemoryRecord]
                if search_text and search_text.strip():
                    hits: list[SearchHit] = search_memories(
                        self.parts, search_text, user_id=user_id, limit=self.search_limit,
                        options=DEFAULT_OPTIONS.with_(reference_time=now), **filters)
                    records = [h.record for h in hits]
                else:
                    records = list_page(self.parts.store, user_id=user_id, limit=self.search_limit,
                                        **filters).items
            except RememError as exc:
                call.error = str(exc)
                return f"error: {exc}"
            call.found, call.texts = [r.id for r in records], [r.text for r in records]
            return _format_hits(records, tz)

        def fetch_similar_memories(search_text: str) -> str:
            """Search the user's long-term memories by meaning and keywords."""
            return run("fetch_similar_memories", {"search_text": search_text}, search_text)

        def search_by_category(category: str, search_text: str) -> str:
            return run("search_by_category", {"category": category, "search_text": search_text}, search_text,
                       categories=[category])

        search_by_category.__doc__ = ("Search the user's memories within one category, one of: "
                                      + ", ".join(self.pipeline.extractor.categories))

        def search_by_time(start: str, end: str, search_text: str) -> str:
            """Search the user's memories of a period: start and end as YYYY-MM-DD, inclusive days of the user's
            local calendar (the `now` you were given)."""
            args = {"start": start, "end": end, "search_text": search_text}
            since, until = parse_date(start, tz), parse_date(end, tz, end_of_day=True)
            if since is None or until is None:
                calls.append(ToolCall(name="search_by_time", args=args, error="bad dates"))
                return "error: start and end must be dates as YYYY-MM-DD"
            return run("search_by_time", args, search_text, since=since, until=until)

        tools: list[Callable[..., str]] = [fetch_similar_memories, search_by_category, search_by_time]
        if self.parts.settings.graph:  # graph memory (remem.graph): one more tool, on the same search budget
            from ..graph.tools import search_graph_tool

            def gate(name: str, args: dict[str, Any]) -> ToolCall | None:
                if used[0] >= self.max_tool_calls:
                    return None
                used[0] += 1
                calls.append(call := ToolCall(name=name, args=args))
                return call

            tools.append(search_graph_tool(self.parts, user_id, now, gate))
        return tools

    # -- the turn ----------------------------------------------------------------------------------------
    def reply(self, user_id: str, text: str, *, session_id: str | None = None, now: datetime | None = None) -> AgentReply:
        """Answer one user turn (searching memory as needed), then store it (see the module docstring).

        ``now`` is the time of the turn and the user's local time when aware (``datetime.now(ZoneInfo(...))``):
        the LM is shown it with its offset, and "yesterday" is counted on its calendar; naive = UTC; default: now,
        UTC. Raises ``ValidationError`` for a bad user id or text, ``LLMError`` when the LM fails after retries.
        """
        user_id = check_user_id(user_id)
        text = self.parts.text(text, "message")
        check_reply_args(session_id=session_id, now=now)
        now = aware(now) if now is not None else utcnow()
        history = self.transcript(user_id)
        turn = Message(role="user", content=text, timestamp=now, id=f"m-{uuid.uuid4().hex[:12]}")
        context = self.context(user_id, text, now)
        calls: list[ToolCall] = []
        last: BaseException | None = None
        with meter(self.lm, self.pipeline.adapter) as m:
            for _ in range(self.retries + 1):
                calls.clear()
                agent = GuardedReAct(self.signature, tools=self._tools(user_id, calls, now),
                                     max_iters=2 * self.max_tool_calls + 2)
                try:
                    prediction = agent(
                        core_memories=context.text or "(none yet)",
                        transcript="\n".join(f"{x.role}: {x.content}" for x in history) or "(new conversation)",
                        question=text, now=stamp(now),
                    )
                    response, save = str(prediction.response).strip(), bool(prediction.save_memory)
                    if not response:
                        raise ValueError("empty response")
                    break
                except RETRYABLE as exc:
                    last = exc
            else:
                assert last is not None
                self.pipeline.record_usage(user_id, m.usage)
                raise LLMError(f"the chat agent failed after {self.retries + 1} attempts ({type(last).__name__})",
                               raw_output=raw_output_of(last), usage=m.usage.model_dump())
            usage = m.usage
        self.pipeline.record_usage(user_id, usage)
        self._check_calls(prediction.trajectory, calls)
        out = AgentReply(response=response, save_memory=save, tool_calls=calls, usage=usage,
                         context_ids=[i for item in context.items for i in item.memory_ids],
                         context_tokens=context.tokens)
        self._remember_turn(user_id, turn, Message(role="assistant", content=response, timestamp=utcnow()))
        if not save:
            # Every user turn is kept as an episode (nothing said is unrecoverable); only the facts wait for
            # the agent's judgement.
            episode = MemoryRecord(user_id=user_id, text=text, kind="episode", observed_at=turn.timestamp,
                                   source_ids=[turn.id] if turn.id else [], role="user", session_id=session_id)
            stored = self.parts.writer.insert([episode], actor="agent")
            out.turn_id = stored[0].memory_id if stored else None
        else:
            try:
                result = self.pipeline.add([turn], user_id=user_id, session_id=session_id, actor="agent",
                                           context=history, background=self.background)
                out.job_id, out.events, out.usage = result.job_id, result.events, out.usage + result.usage
                out.turn_id = result.episodes[0].memory_id if result.episodes else None
            except LLMError as exc:  # the turn is queued and stored; its facts wait for reprocess/a worker
                out.job_id = exc.context.get("job_id")
                out.turn_id = (exc.context.get("episode_ids") or [None])[0]
                out.memory_error = str(exc)
                out.usage = out.usage + LLMUsage.model_validate(exc.context.get("usage") or {})
        return out

    @staticmethod
    def _check_calls(trajectory: dict[str, Any], calls: list[ToolCall]) -> None:
        """Record tool calls that failed before reaching our code (bad arguments, unknown tools)."""
        for name, args, observation in tool_calls(trajectory):
            if observation.startswith(("Execution error", "error: there is no tool")):
                calls.append(ToolCall(name=name, args=args if isinstance(args, dict) else {}, error=observation[:300]))

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background memory jobs of this agent's pipeline."""
        self.pipeline.wait(timeout)
