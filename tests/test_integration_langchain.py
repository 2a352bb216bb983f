"""LangChain: memory tools inside ``langchain.agents.create_agent`` driven by LangChain's fake chat model, and the
episode-backed chat history inside ``RunnableWithMessageHistory``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables.history import RunnableWithMessageHistory

from remem import InvalidUserIdError, Memory
from remem.integrations.langchain import (
    RememChatMessageHistory,
    SaveMemoryTool,
    SearchMemoryTool,
    memory_tools,
)


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """LangChain's own fake chat model (scripted replies), accepting ``bind_tools`` as agents require."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeChatModel:  # type: ignore[override]
        return self


def scripted(*replies: AIMessage) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=iter(replies))


def call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def tool_outputs(result: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]


def test_agent_saves_for_alice_a_new_session_finds_it_bob_never_sees_it(fake_memory: Memory) -> None:
    saver = create_agent(scripted(call("save_memory", {"text": "Alice is vegan", "categories": ["diet"]}, "c1"),
                                  AIMessage(content="Noted.")),
                         tools=memory_tools(fake_memory, user_id="alice"))
    first = saver.invoke({"messages": [HumanMessage("I'm vegan, remember that")]})
    assert tool_outputs(first) == ["Saved."]
    assert first["messages"][-1].content == "Noted."

    # A new agent, a new conversation: only the memory links them.
    asker = create_agent(scripted(call("search_memory", {"query": "vegan diet"}, "c2"), AIMessage(content="Vegan.")),
                         tools=memory_tools(fake_memory, user_id="alice"))
    (found,) = tool_outputs(asker.invoke({"messages": [HumanMessage("What do I eat?")]}))
    assert found.startswith("1. [") and found.endswith("] Alice is vegan")

    # Bob's tools, even when the model names alice in its arguments, see only bob.
    other = create_agent(scripted(call("search_memory", {"query": "vegan diet", "user_id": "alice"}, "c3"),
                                  AIMessage(content="?")),
                         tools=memory_tools(fake_memory, user_id="bob"))
    assert tool_outputs(other.invoke({"messages": [HumanMessage("What do I eat?")]})) == ["No memories found."]
    (record,) = fake_memory.list(user_id="alice").items
    assert (record.kind, record.categories) == ("fact", ["diet"])
    assert fake_memory.list(user_id="bob").total == 0


def test_tools_have_no_user_argument_and_validate_the_user(fake_memory: Memory) -> None:
    search, save = memory_tools(fake_memory, user_id="alice")
    assert (search.name, save.name) == ("search_memory", "save_memory")
    assert set(search.args) == {"query"} and set(save.args) == {"text", "categories"}
    assert save.invoke({"text": "Alice is vegan"}) == "Saved."
    assert save.invoke({"text": "alice IS vegan "}) == "Already known."
    with pytest.raises(InvalidUserIdError):
        SearchMemoryTool(memory=fake_memory, user_id="")
    with pytest.raises(InvalidUserIdError):
        SaveMemoryTool(memory=fake_memory, user_id="bad id!")


def test_chat_history_round_trips_and_is_per_user_and_session(fake_memory: Memory) -> None:
    history = RememChatMessageHistory(fake_memory, user_id="alice", session_id="s1")
    messages: list[BaseMessage] = [
        SystemMessage("be brief"), HumanMessage("yes", id="h1"), AIMessage("ok"),
        AIMessage("", tool_calls=[{"name": "search_memory", "args": {"query": "x"}, "id": "t", "type": "tool_call"}]),
        ToolMessage("1. something", tool_call_id="t"), HumanMessage("yes", id="h2"),
    ]
    history.add_messages(messages)
    again = RememChatMessageHistory(fake_memory, user_id="alice", session_id="s1").messages
    assert [(type(m).__name__, m.content) for m in again] == [
        ("SystemMessage", "be brief"), ("HumanMessage", "yes"), ("AIMessage", "ok"), ("HumanMessage", "yes")]
    assert [m.id for m in again if isinstance(m, HumanMessage)] == ["h1", "h2"]  # both "yes": not deduplicated
    assert RememChatMessageHistory(fake_memory, user_id="alice", session_id="s2").messages == []
    assert RememChatMessageHistory(fake_memory, user_id="bob", session_id="s1").messages == []
    hits = fake_memory.search("brief", user_id="alice", kinds=["episode"])
    assert hits[0].record.session_id == "s1"  # the turns are long-term memory too
    history.clear()
    assert history.messages == []
    assert fake_memory.list(user_id="alice", deleted=True).total == 4  # soft-deleted: restorable


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history_keeps_turns_across_sessions(fake_memory: Memory) -> None:
    seen: list[list[BaseMessage]] = []

    class RecordingFake(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            seen.append(list(messages))
            return super()._generate(messages, *args, **kwargs)

    def history_for(session_id: str) -> BaseChatMessageHistory:
        return RememChatMessageHistory(fake_memory, user_id="alice", session_id=session_id)

    chain = RunnableWithMessageHistory(RecordingFake(messages=iter([AIMessage("Hi Alice"), AIMessage("Lisbon")])),
                                       history_for)
    chain.invoke([HumanMessage("I live in Lisbon")], config={"configurable": {"session_id": "s1"}})
    chain.invoke([HumanMessage("Where do I live?")], config={"configurable": {"session_id": "s1"}})
    assert [m.content for m in seen[1]] == ["I live in Lisbon", "Hi Alice", "Where do I live?"]
    assert [m.content for m in history_for("s1").messages] == ["I live in Lisbon", "Hi Alice", "Where do I live?",
                                                              "Lisbon"]


BAD_CALLS = [  # review 2, issue 14: each ended the agent run with remem's ValidationError
    ("search_memory", {"query": ""}, "invalid_input: query is empty"),
    ("search_memory", {"query": "tulips \ud800"}, "invalid_input: query contains a lone surrogate (U+D800 at position 7)"),
    ("save_memory", {"text": "  "}, "invalid_input: text is empty"),
    ("save_memory", {"text": "Alice likes tulips", "categories": ["c" * 1000]},
     "invalid_input: categories[0] has 1000 characters, more than the limit of 64"),
    ("save_memory", {"text": "nul \x00"}, "invalid_input: text contains a NUL character (position 4)"),
    ("search_memory", {"query": 5}, "invalid_input: query: Input should be a valid string"),  # the schema's own
]


@pytest.mark.parametrize(("tool", "args", "error"), BAD_CALLS)
def test_a_bad_argument_is_a_tool_error_the_model_sees(fake_memory: Memory, tool: str, args: dict[str, Any],
                                                        error: str) -> None:
    seen: list[list[BaseMessage]] = []

    class Recording(ToolCallingFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *a: Any, **kw: Any) -> Any:
            seen.append(list(messages))
            return super()._generate(messages, *a, **kw)

    agent = create_agent(Recording(messages=iter([call(tool, args, "c1"), AIMessage(content="Sorry.")])),
                         tools=memory_tools(fake_memory, user_id="alice"))
    result = agent.invoke({"messages": [HumanMessage("remember tulips")]})
    assert result["messages"][-1].content == "Sorry."  # the run completed
    (reply,) = [m for m in seen[1] if isinstance(m, ToolMessage)]  # what the model read on its second turn
    assert reply.status == "error" and str(reply.content).startswith(error)
    assert fake_memory.list(user_id="alice").total == 0


def test_tools_invoked_directly_return_the_error_too(fake_memory: Memory) -> None:
    search, save = memory_tools(fake_memory, user_id="alice")
    assert search.invoke({"query": " "}) == "invalid_input: query is empty"
    assert save.invoke({"text": "x", "categories": "food"}) == "invalid_input: categories: Input should be a valid list"
