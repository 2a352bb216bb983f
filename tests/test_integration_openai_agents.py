"""OpenAI Agents SDK: ``Runner.run`` with the SDK's own ``agents.testing.ScriptedModel``, remem's memory tools and
``RememSession`` on the real embedded store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, RunConfig, Runner
from agents.items import ToolCallOutputItem
from agents.testing import ScriptedModel, assistant_message, function_call

from remem import ConfigurationError, InvalidUserIdError, Memory
from remem.integrations.openai_agents import RememSession, memory_tools

NO_TRACING = RunConfig(tracing_disabled=True)  # tracing would export to OpenAI: tests stay offline


def run(agent: Agent[Any], text: str, session: RememSession | None = None) -> Any:
    return asyncio.run(Runner.run(agent, text, session=session, run_config=NO_TRACING))


def tool_outputs(result: Any) -> list[str]:
    return [str(item.output) for item in result.new_items if isinstance(item, ToolCallOutputItem)]


def test_agent_saves_for_alice_a_new_session_finds_it_bob_never_sees_it(fake_memory: Memory) -> None:
    saver = Agent(name="assistant", model=ScriptedModel([
        [function_call("save_memory", {"text": "Alice is vegan"}, call_id="c1")],
        [assistant_message("Noted.")]]), tools=memory_tools(fake_memory, user_id="alice"))
    first = run(saver, "I'm vegan, remember that", RememSession(fake_memory, user_id="alice", session_id="chat-1"))
    assert tool_outputs(first) == ["Saved."]
    assert first.final_output == "Noted."

    asker = Agent(name="assistant", model=ScriptedModel([
        [function_call("search_memory", {"query": "vegan diet"}, call_id="c2")],
        [assistant_message("You are vegan.")]]), tools=memory_tools(fake_memory, user_id="alice"))
    second = run(asker, "What do I eat?", RememSession(fake_memory, user_id="alice", session_id="chat-2"))
    (found,) = tool_outputs(second)
    lines = found.splitlines()
    assert any(line.endswith("] Alice is vegan") for line in lines)  # the saved fact
    assert "I'm vegan, remember that" in found  # chat-1's turns are long-term memory too

    other = Agent(name="assistant", model=ScriptedModel([
        [function_call("search_memory", {"query": "vegan diet"}, call_id="c3")],
        [assistant_message("?")]]), tools=memory_tools(fake_memory, user_id="bob"))
    third = run(other, "What do I eat?", RememSession(fake_memory, user_id="bob", session_id="chat-1"))
    (bobs,) = tool_outputs(third)
    assert "vegan" not in bobs.lower()  # only bob's own turn of this run ("What do I eat?") can match
    assert [line.split("] ", 1)[1] for line in bobs.splitlines()] == ["What do I eat?"]
    assert sorted(r.text for r in fake_memory.list(user_id="bob").items) == ["?", "What do I eat?"]


def test_session_replays_messages_into_the_next_run(fake_memory: Memory) -> None:
    model = ScriptedModel([[assistant_message("Hi Alice", item_id="msg-1")],
                           [assistant_message("Lisbon", item_id="msg-2")]])
    agent = Agent(name="assistant", model=model)
    session = RememSession(fake_memory, user_id="alice", session_id="chat-1")
    run(agent, "I live in Lisbon", session)
    run(agent, "Where do I live?", RememSession(fake_memory, user_id="alice", session_id="chat-1"))
    assert model.last_call is not None
    sent = model.last_call.input
    assert [(i["role"], _text(i)) for i in sent] == [
        ("user", "I live in Lisbon"), ("assistant", "Hi Alice"), ("user", "Where do I live?")]
    items = asyncio.run(session.get_items())
    assert [_text(i) for i in items] == ["I live in Lisbon", "Hi Alice", "Where do I live?", "Lisbon"]
    assert items[1]["id"] == "msg-1" and items[1]["type"] == "message"  # the SDK's own item, unchanged
    assert [_text(i) for i in asyncio.run(session.get_items(limit=2))] == ["Where do I live?", "Lisbon"]
    episodes = fake_memory.list(user_id="alice", session_id="chat-1", order="asc").items
    assert [(r.role, r.seq) for r in episodes] == [("user", 0), ("assistant", 1), ("user", 2), ("assistant", 3)]
    assert [r.source_ids for r in episodes][1::2] == [["msg-1"], ["msg-2"]]
    assert all(len(r.source_ids) == 1 and r.source_ids[0].startswith("m-") for r in episodes[0::2])
    assert asyncio.run(RememSession(fake_memory, user_id="bob", session_id="chat-1").get_items()) == []


def test_session_keeps_only_messages_and_pops_and_clears(fake_memory: Memory) -> None:
    session = RememSession(fake_memory, user_id="alice", session_id="s")
    asyncio.run(session.add_items([
        {"role": "user", "content": "yes"},
        {"type": "function_call", "call_id": "c", "name": "search_memory", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "1. [2024-01-01] secret"},
        {"type": "reasoning", "id": "r", "summary": []},
        {"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
        {"role": "user", "content": "yes"},
        {"role": "user", "content": "   "},
    ]))
    assert [i["content"] for i in asyncio.run(session.get_items())] == [
        "yes", [{"type": "input_text", "text": "be brief"}], "yes"]
    popped = asyncio.run(session.pop_item())
    assert popped == {"role": "user", "content": "yes"}
    assert len(asyncio.run(session.get_items())) == 2
    asyncio.run(session.clear_session())
    assert asyncio.run(session.get_items()) == []
    assert asyncio.run(session.pop_item()) is None
    assert fake_memory.list(user_id="alice", deleted=True).total == 3


def test_bad_user_and_infer_without_lm(fake_memory: Memory) -> None:
    with pytest.raises(InvalidUserIdError):
        memory_tools(fake_memory, user_id="not valid!")
    with pytest.raises(InvalidUserIdError):
        RememSession(fake_memory, user_id="", session_id="s")
    with pytest.raises(ConfigurationError, match="language model"):
        RememSession(fake_memory, user_id="alice", session_id="s", infer=True)


def _text(item: Any) -> str:
    content = item["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def test_session_with_infer_distils_facts_that_cite_the_turn(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline, ScriptedLM, react_script

    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [{"text": "Alice loves coffee", "categories": ["preferences"],
                                      "source_ids": ["u1"], "date": None}]}],
        "UpdateMemory": react_script(("add_memory", {"text": "Alice loves coffee", "categories": ["preferences"]}),
                                     outputs={"summary": "ADD"}),
    })
    Pipeline(fake_memory, lm)
    session = RememSession(fake_memory, user_id="alice", session_id="s", infer=True)
    asyncio.run(session.add_items([{"role": "user", "content": "I love coffee", "id": "u1"}]))
    (fact,) = fake_memory.list(user_id="alice", kinds=["fact"]).items
    assert (fact.text, fact.source_ids) == ("Alice loves coffee", ["u1"])
    (episode,) = fake_memory.list(user_id="alice", kinds=["episode"]).items  # the pipeline's copy was a NOOP
    assert (episode.text, episode.source_ids, episode.session_id) == ("I love coffee", ["u1"], "s")
    assert asyncio.run(session.get_items()) == [{"role": "user", "content": "I love coffee", "id": "u1"}]


@pytest.mark.parametrize(("tool", "args", "error"), [  # the SDK's default message hid the reason
    ("search_memory", {"query": ""}, "invalid_input: query is empty"),
    ("save_memory", {"text": " "}, "invalid_input: text is empty"),
    ("save_memory", {"text": "nul \x00"}, "invalid_input: text contains a NUL character (position 4)"),
])
def test_a_bad_argument_is_a_tool_output_the_model_sees(fake_memory: Memory, tool: str, args: dict[str, Any],
                                                        error: str) -> None:
    """(A lone surrogate in the arguments is not in this list: the SDK itself fails to fingerprint such a call,
    ``UnicodeEncodeError``, before any tool runs.)"""
    agent = Agent(name="assistant", model=ScriptedModel([[function_call(tool, args, call_id="c1")],
                                                         [assistant_message("Sorry.")]]),
                  tools=memory_tools(fake_memory, user_id="alice"))
    result = run(agent, "remember tulips")
    assert result.final_output == "Sorry."
    (output,) = tool_outputs(result)
    assert output.startswith(error)
    assert fake_memory.list(user_id="alice").total == 0
