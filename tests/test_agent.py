"""The chat agent (dspy.ReAct over ResponseGenerator) with memory tools bound to the user, scripted LM."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

import remem
from remem import EventType, LLMError, Memory
from remem.pipeline import Agent, ScriptedLM, react_script


def answer(*calls: tuple[str, dict[str, object]], response: str, save: bool) -> list[object]:
    return react_script(*calls, outputs={"response": response, "save_memory": save})


def observations(lm: ScriptedLM, route: str = "ResponseGenerator") -> list[str]:
    last = [r["user"] for r in lm.requests if r["route"] == route][-1]
    return re.findall(r"\[\[ ## observation_\d+ ## \]\]\n(.*?)\n\n\[\[", last, flags=re.DOTALL)


def test_agent_searches_memory_only_through_its_tools_and_reports_them(fake_memory: Memory) -> None:
    fake_memory.add("Alice drinks green tea every morning", user_id="alice", categories=["preferences"])
    fake_memory.add("Alice ran a marathon in Lisbon", user_id="alice", categories=["events"])
    lm = ScriptedLM({"ResponseGenerator": answer(("fetch_similar_memories", {"search_text": "marathon"}),
                                                 response="You ran the Lisbon marathon.", save=False)})
    agent = remem.Agent(fake_memory, lm=lm)
    expected = agent.context("alice", "Which race did I run?")  # before the reply stores the turn itself
    reply = agent.reply("alice", "Which race did I run?")
    assert reply.response == "You ran the Lisbon marathon." and reply.save_memory is False
    [call] = reply.tool_calls
    assert call.name == "fetch_similar_memories" and call.args == {"search_text": "marathon"}
    assert call.texts[0] == "Alice ran a marathon in Lisbon"
    assert reply.events == [] and reply.job_id is None
    assert reply.usage.calls == 3 and reply.usage.prompt_tokens > 0
    # the prompt's memory block is Memory.context for the message: core facts (preferences) first, then the
    # relevant memories, dated, without a tool call
    prompt = lm.requests[0]["user"]
    block = prompt.split("[[ ## core_memories ## ]]\n")[1].split("\n\n[[ ## transcript")[0]
    assert block == expected.text and expected.text.startswith("## About the user\n- ")
    assert "Alice drinks green tea every morning\n\n## Relevant memories\n- " in block
    assert "Alice ran a marathon in Lisbon" in block and expected.tokens <= 1000
    assert set(reply.context_ids) == {r.id for r in fake_memory.list(user_id="alice", kinds=["fact"]).items}
    assert reply.context_tokens == expected.tokens
    assert [m.role for m in agent.transcript("alice")] == ["user", "assistant"]


def test_save_memory_runs_extraction_and_maintenance_on_the_turn(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "ResponseGenerator": answer(response="Noted, tea it is.", save=True),
        "MemoryExtract": [{"facts": [{"text": "Alice prefers tea", "categories": ["preferences"],
                                      "source_ids": ["ignored-unknown-id"]}]}],
    })
    agent = Agent(fake_memory, lm=lm)
    reply = agent.reply("alice", "I prefer tea these days", now=datetime(2023, 5, 8, 9, tzinfo=UTC))
    assert [(e.event, e.text) for e in reply.events] == [(EventType.ADD, "Alice prefers tea")]
    # the reply (a step and finish), then extraction; a fact unlike anything known needs no agent run
    assert reply.memory_error is None and reply.usage.calls == 2 + 1
    assert fake_memory.stats().lm_usage.calls == 3
    fact = fake_memory.get(reply.events[0].memory_id, user_id="alice")
    [episode] = fake_memory.list(user_id="alice", kinds=["episode"]).items
    assert fact.source_ids == episode.source_ids  # unknown source ids fall back to the turn's id
    assert fact.observed_at == datetime(2023, 5, 8, 9, tzinfo=UTC)
    assert fake_memory.pipeline.queue.count("done") == 1
    # the next reply sees the new fact as a core fact
    lm2 = ScriptedLM({"ResponseGenerator": answer(response="Tea.", save=False)})
    Agent(fake_memory, lm=lm2).reply("alice", "What do I drink?")
    block = lm2.requests[0]["user"].split("[[ ## transcript")[0]
    assert "## About the user\n- 2023-05-08 (Mon): Alice prefers tea\n" in block
    assert "I prefer tea these days" not in block  # the turn the fact came from is not paid for twice


def test_two_users_never_see_each_other_through_any_tool(fake_memory: Memory) -> None:
    fake_memory.add("Alice's secret diary code is 4711", user_id="alice", categories=["personal_details"])
    lm = ScriptedLM({"ResponseGenerator": answer(
        ("fetch_similar_memories", {"search_text": "secret diary code 4711"}),
        ("search_by_category", {"category": "personal_details", "search_text": "secret diary code"}),
        ("search_by_time", {"start": "2000-01-01", "end": "2100-01-01", "search_text": ""}),
        response="I don't know.", save=False)})
    agent = Agent(fake_memory, lm=lm, max_tool_calls=3)
    reply = agent.reply("bob", "What is the secret diary code?")
    assert [c.found for c in reply.tool_calls] == [[], [], []]
    assert observations(lm) == ["no memories found"] * 3
    assert not any("Alice's secret" in r["user"] or "4711" in r["user"].split("[[ ## question")[0]
                   for r in lm.requests)
    assert reply.context_ids == [] and "(none yet)" in lm.requests[0]["user"]
    # the same tools for alice do find it
    lm_a = ScriptedLM({"ResponseGenerator": answer(("search_by_category", {"category": "personal_details",
                                                                          "search_text": "diary"}),
                                                   response="4711", save=False)})
    assert Agent(fake_memory, lm=lm_a).reply("alice", "my code?").tool_calls[0].texts == [
        "Alice's secret diary code is 4711"]


def test_time_search_budget_and_bad_arguments(fake_memory: Memory) -> None:
    fake_memory.add_records([
        remem.MemoryRecord(user_id="alice", text="Alice visited Paris", observed_at=datetime(2023, 5, 7, tzinfo=UTC)),
        remem.MemoryRecord(user_id="alice", text="Alice visited Rome", observed_at=datetime(2023, 6, 1, tzinfo=UTC)),
    ])
    lm = ScriptedLM({"ResponseGenerator": answer(
        ("search_by_time", {"start": "May 2023", "end": "2023-05-31", "search_text": "visited"}),
        ("search_by_time", {"start": "2023-05-01", "end": "2023-05-07", "search_text": "visited"}),
        ("fetch_similar_memories", {"query": "visited"}),
        ("fetch_similar_memories", {"search_text": "Rome"}),
        ("fetch_similar_memories", {"search_text": "Paris"}),
        response="Paris, on 7 May 2023.", save=False)})
    reply = Agent(fake_memory, lm=lm, max_tool_calls=2).reply("alice", "Where was I in early May?")
    obs = observations(lm)
    assert obs[0] == "error: start and end must be dates as YYYY-MM-DD"
    assert obs[1] == "- (2023-05-07) Alice visited Paris"  # end date is inclusive; Rome (June) is outside
    assert obs[2].startswith("Execution error in fetch_similar_memories")
    assert obs[3].startswith("- (2023-06-01) Alice visited Rome")
    assert obs[4].startswith("limit reached")  # at most max_tool_calls searches per reply
    assert [c.name for c in reply.tool_calls if c.error is None] == ["search_by_time", "fetch_similar_memories"]
    assert next(c.texts for c in reply.tool_calls if c.error is None) == ["Alice visited Paris"]
    assert [c.name for c in reply.tool_calls if c.error] == ["search_by_time", "fetch_similar_memories"]


def test_transcript_is_bounded(fake_memory: Memory) -> None:
    lm = ScriptedLM({"ResponseGenerator": [reply for i in range(5) for reply in answer(response=f"ok {i}", save=False)]})
    agent = Agent(fake_memory, lm=lm, window=4)
    for i in range(5):
        agent.reply("alice", f"message {i}")
    assert [m.content for m in agent.transcript("alice")] == ["message 3", "ok 3", "message 4", "ok 4"]
    transcript = lm.requests[-1]["user"].split("[[ ## transcript ## ]]")[1].split("[[ ## question")[0]
    assert "message 0" not in transcript and "message 3" in transcript


def test_failures_garbage_reply_and_a_failed_memory_step(fake_memory: Memory) -> None:
    agent = Agent(fake_memory, lm=ScriptedLM([], default="!!! no fields here"))
    with pytest.raises(LLMError) as info:
        agent.reply("alice", "hello")
    assert info.value.raw_output == "!!! no fields here"
    assert agent.transcript("alice") == []
    lm = ScriptedLM({"ResponseGenerator": answer(response="Got it.", save=True)}, default="garbage")
    reply = Agent(fake_memory, lm=lm).reply("alice", "My sister is called Ana")
    assert reply.response == "Got it." and reply.memory_error and "extraction failed" in reply.memory_error
    [job] = fake_memory.pipeline.queue.pending()
    assert job.id == reply.job_id and job.payload.messages[0].content == "My sister is called Ana"
    assert [r.text for r in fake_memory.list(user_id="alice").items] == ["My sister is called Ana"]


def test_background_memory_step(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "ResponseGenerator": answer(response="Nice!", save=True),
        "MemoryExtract": [{"facts": [{"text": "Alice adopted a cat", "categories": ["possessions"]}]}],
    })
    agent = Agent(fake_memory, lm=lm, background=True)
    reply = agent.reply("alice", "I adopted a cat")
    assert reply.events == [] and reply.job_id is not None
    agent.wait(30)
    assert [r.text for r in fake_memory.list(user_id="alice", kinds=["fact"]).items] == ["Alice adopted a cat"]
    assert fake_memory.pipeline.queue.get(reply.job_id).status == "done"  # type: ignore[union-attr]


def test_a_turn_not_worth_remembering_is_still_kept_as_an_episode(fake_memory: Memory) -> None:
    lm = ScriptedLM({"ResponseGenerator": answer(response="Hi!", save=False)})
    reply = Agent(fake_memory, lm=lm).reply("alice", "hello there, how are you?", session_id="chat-1")
    assert reply.save_memory is False and reply.job_id is None and reply.events == []
    episode = fake_memory.get(reply.turn_id or "", user_id="alice")
    assert (episode.kind, episode.text, episode.session_id, episode.seq) == (
        "episode", "hello there, how are you?", "chat-1", 0)
    assert fake_memory.list(user_id="alice", kinds=["fact"]).total == 0  # no extraction ran
    assert [r["route"] for r in lm.requests] == ["ResponseGenerator"] * len(lm.requests)
