"""The scripted scenarios against a real LLM. Skipped unless REMEM_TEST_LM names a model, e.g.

    REMEM_TEST_LM=openai/gpt-4o-mini OPENAI_API_KEY=… pytest -m real_lm tests/test_real_lm.py
    REMEM_TEST_LM=ollama_chat/llama3.2 REMEM_TEST_LM_API_BASE=http://localhost:11434 pytest -m real_lm …

Assertions are about outcomes (one live fact about the drink, the old text in history, the date, the number of
LM calls the control flow allows), not wording. The same scenarios run offline with the scripted LM in
tests/test_pipeline_maintain.py and tests/test_pipeline_workers.py. No model is reachable where this was written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remem import EventType, Memory, Message
from remem.pipeline import Agent, LMBudget, Pipeline

MODEL = os.environ.get("REMEM_TEST_LM")
pytestmark = [pytest.mark.real_lm, pytest.mark.skipif(not MODEL, reason="set REMEM_TEST_LM to run real-LLM tests")]
MAY8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "real", embedder="local") as m:
        Pipeline(m, str(MODEL), api_base=os.environ.get("REMEM_TEST_LM_API_BASE"))
        yield m


def test_a_fact_unlike_anything_known_costs_one_call(memory: Memory) -> None:
    memory.add("Alice works as a nurse in Lisbon", user_id="alice", categories=["work"])
    result = memory.add([Message(content="I play the cello.", name="Alice", id="t1", timestamp=MAY8)],
                        user_id="alice", infer=True)
    assert result.usage.calls == 1 and result.to_agent == 0  # type: ignore[attr-defined]
    assert any("cello" in f.lower() for f in live_facts(memory, "alice"))


def test_an_exact_repeat_adds_nothing(memory: Memory) -> None:
    msg = Message(content="I'm allergic to peanuts.", name="Alice", id="t1")
    memory.add([msg], user_id="alice", infer=True)
    before = live_facts(memory, "alice")
    again = memory.add([msg.model_copy(update={"id": "t2"})], user_id="alice", infer=True)
    assert live_facts(memory, "alice") == before and not again.added


def test_background_add_is_finished_by_the_worker(memory: Memory) -> None:
    result = memory.add([Message(content="I adopted a cat named Miso.", name="Alice", id="t1")], user_id="alice",
                        infer=True, background=True)
    assert result.pending and memory.list(user_id="alice", kinds=["episode"]).total == 1
    assert memory.pipeline.wait(300)
    assert any("miso" in f.lower() for f in live_facts(memory, "alice"))


def test_a_small_budget_loses_nothing(tmp_path: Path) -> None:
    with Memory(tmp_path / "budget", embedder="local") as m:
        Pipeline(m, str(MODEL), api_base=os.environ.get("REMEM_TEST_LM_API_BASE"), budget=LMBudget(max_calls=2))
        m.add("Alice likes coffee", user_id="alice", categories=["preferences"])
        result = m.add([Message(content="Actually, I like tea more than coffee now.", name="Alice", id="t2")],
                       user_id="alice", infer=True)
        assert result.usage.calls <= 2
        assert any("tea" in f.lower() for f in live_facts(m, "alice"))


def live_facts(memory: Memory, user: str) -> list[str]:
    return [r.text for r in memory.list(user_id=user, kinds=["fact"]).items]


def test_coffee_to_tea(memory: Memory) -> None:
    memory.add([Message(content="I love coffee, I drink it every day.", name="Alice", id="t1", timestamp=MAY8)],
               user_id="alice", infer=True)
    assert any("coffee" in f.lower() for f in live_facts(memory, "alice"))
    result = memory.add([Message(content="Actually, I like tea more than coffee now.", name="Alice", id="t2",
                                 timestamp=MAY8)], user_id="alice", infer=True)
    assert 2 <= result.usage.calls <= 12 and result.usage.prompt_tokens > 0  # extraction + agent, in budget
    facts = [f.lower() for f in live_facts(memory, "alice")]
    assert any("tea" in f for f in facts), facts
    assert not [f for f in facts if "coffee" in f and "tea" not in f], facts  # no conflicting live memory
    changed = [e for e in result.events if e.event in (EventType.UPDATE, EventType.DELETE)]
    assert changed, result.events
    assert any(e.old_text and "coffee" in e.old_text.lower()
               for e in memory.log.for_user("alice") if e.event in (EventType.UPDATE, EventType.DELETE))


def test_duplicate_is_not_stored_twice(memory: Memory) -> None:
    memory.add([Message(content="I'm allergic to peanuts.", name="Alice", id="t1")], user_id="alice", infer=True)
    before = len(live_facts(memory, "alice"))
    memory.add([Message(content="Just so you know, peanuts: I'm allergic.", name="Alice", id="t2")],
               user_id="alice", infer=True)
    assert len(live_facts(memory, "alice")) == before


def test_relative_date(memory: Memory) -> None:
    msg = Message(content="I went to a LGBTQ support group yesterday.", name="Caroline", id="D1:3", timestamp=MAY8)
    result = memory.add([msg], user_id="caroline", infer=True)
    added = [memory.get(e.memory_id, user_id="caroline") for e in result.events
             if e.event is EventType.ADD and e.memory_id]
    assert added and any(r.observed_at and r.observed_at.date().isoformat() == "2023-05-07" for r in added)


def test_agent_uses_memory_and_keeps_users_apart(memory: Memory) -> None:
    memory.add("Alice's favourite city is Lisbon", user_id="alice", categories=["preferences"])
    agent = Agent(memory)
    alice = agent.reply("alice", "Which city do I like most?")
    assert "lisbon" in alice.response.lower()
    bob = agent.reply("bob", "Which city does Alice like most?")
    assert all(not call.texts or all("Lisbon" not in t for t in call.texts) for call in bob.tool_calls)
