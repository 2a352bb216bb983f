"""Extraction + triage + maintenance end to end: real dspy.Predict / dspy.ReAct, scripted LM, real edge store.

Tests that need the agent use the packaged MiniLM embedder (``local_memory``) and the default conflict floor:
the obvious conflicts here (coffee → tea, a dog gone, Lisbon → Porto) must reach the agent with the shipped
setting. The fake embedder has another cosine scale; tests that use it set ``conflict_floor`` themselves.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from remem import EventType, Memory, Message
from remem.pipeline import LMBudget, Pipeline, ScriptedLM, react_script

MAY8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def extract(*facts: dict[str, object]) -> dict[str, object]:
    return {"facts": list(facts)}


def fact(text: str, sources: list[str], categories: list[str] | None = None, date: str | None = None) -> dict[str, object]:
    return {"text": text, "categories": categories or ["preferences"], "source_ids": sources, "date": date}


def turn(text: str, mid: str, when: datetime = MAY8) -> Message:
    return Message(content=text, id=mid, name="Alice", timestamp=when)


def facts_of(memory: Memory, user: str) -> list[str]:
    return sorted(r.text for r in memory.list(user_id=user, kinds=["fact"]).items)


def routes(lm: ScriptedLM) -> list[str]:
    return [r["route"] for r in lm.requests]


def test_a_fact_unlike_anything_known_is_added_with_one_lm_call(local_memory: Memory) -> None:
    local_memory.add("Alice works as a nurse in Lisbon", user_id="alice", categories=["work"])
    lm = ScriptedLM({"MemoryExtract": [extract(fact("Alice plays the cello", ["t1"], ["hobbies"]))]})
    Pipeline(local_memory, lm)
    result = local_memory.add([turn("I practised cello today", "t1")], user_id="alice", infer=True)
    assert [e.event for e in result.events] == [EventType.ADD]
    assert result.usage.calls == 1 and routes(lm) == ["MemoryExtract"]
    assert result.to_agent == 0 and result.pending is False and result.job_id is not None
    record = local_memory.get(result.events[0].memory_id or "", user_id="alice")
    assert (record.kind, record.text, record.categories, record.source_ids) == (
        "fact", "Alice plays the cello", ["hobbies"], ["t1"])
    assert local_memory.pipeline.queue.get(result.job_id).status == "done"


def test_an_exact_repeat_costs_one_call_and_adds_nothing(local_memory: Memory) -> None:
    lm = ScriptedLM({"MemoryExtract": [extract(fact("Alice is allergic to peanuts", ["t1"], ["health"])),
                                       extract(fact("alice is allergic to  peanuts", ["t2"], ["health"])),
                                       extract(fact("Alice is allergic to peanuts!", ["t3"], ["health"]))]})
    Pipeline(local_memory, lm)
    first = local_memory.add([turn("I'm allergic to peanuts", "t1")], user_id="alice", infer=True)
    exact = local_memory.add([turn("Peanuts: allergic, as I said", "t2")], user_id="alice", infer=True)
    near = local_memory.add([turn("Really allergic to peanuts", "t3")], user_id="alice", infer=True)
    for result in (exact, near):
        assert [(e.event, e.memory_id, e.reason) for e in result.events] == [
            (EventType.NOOP, first.events[0].memory_id, "duplicate of an existing memory")]
        assert result.usage.calls == 1 and result.to_agent == 0
    assert facts_of(local_memory, "alice") == ["Alice is allergic to peanuts"]
    assert routes(lm) == ["MemoryExtract"] * 3


def test_a_contradiction_goes_through_the_agent_and_ends_as_an_update_with_history(local_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice likes coffee", ["t1"])),
                          extract(fact("Alice now prefers tea over coffee", ["t2"]))],
        "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice prefers tea (she used to like "
                                                                         "coffee)"})),
    })
    Pipeline(local_memory, lm)
    first = local_memory.add([turn("I love coffee", "t1")], user_id="alice", infer=True)
    assert [e.event for e in first.events] == [EventType.ADD] and first.usage.calls == 1
    second = local_memory.add([turn("Actually, I like tea more now", "t2")], user_id="alice", infer=True)
    assert [e.event for e in second.events] == [EventType.UPDATE] and second.to_agent == 1
    assert second.events[0].memory_id == first.events[0].memory_id  # same id
    assert facts_of(local_memory, "alice") == ["Alice prefers tea (she used to like coffee)"]
    history = local_memory.history(first.events[0].memory_id or "", user_id="alice")
    assert [(e.event, e.old_text) for e in history] == [(EventType.ADD, None), (EventType.UPDATE, "Alice likes coffee")]
    record = local_memory.get(first.events[0].memory_id or "", user_id="alice")
    assert record.kind == "fact" and record.source_ids == ["t1", "t2"]
    episodes = local_memory.list(user_id="alice", kinds=["episode"]).items
    assert sorted(e.source_ids[0] for e in episodes) == ["t1", "t2"]
    # the maintenance prompt shows integers, never the memory's UUID
    maintain_prompts = [r["user"] for r in lm.requests if r["route"] == "UpdateMemory"]
    assert "0: Alice likes coffee" in maintain_prompts[-1]
    assert not any(record.id in p for p in maintain_prompts)
    # extraction, one tool step, finish: ReAct's final extraction call is skipped
    assert second.usage.calls == 3 and second.usage.prompt_tokens > 0 and second.usage.completion_tokens > 0
    assert lm.remaining() == {"MemoryExtract": 0, "UpdateMemory": 0}


def test_a_tool_call_storm_stops_at_the_budget_and_nothing_is_lost(local_memory: Memory) -> None:
    local_memory.add("Alice lives in Lisbon", user_id="alice", categories=["places"])
    storm = [{"next_thought": "again", "next_tool_name": "update_memory", "next_tool_args": {"id": 99, "new_text": "x"}}]
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice moved to Porto", ["t1"], ["places"]),
                                  fact("Alice has a dog named Rex", ["t1"], ["possessions"]))],
        "UpdateMemory": storm * 100,
    })
    Pipeline(local_memory, lm, budget=LMBudget(max_calls=5, max_tokens=1_000_000))
    result = local_memory.add([turn("I moved to Porto with my dog Rex", "t1")], user_id="alice", infer=True)
    assert result.usage.calls == 5 and result.budget_exhausted is True
    assert routes(lm) == ["MemoryExtract"] + ["UpdateMemory"] * 4
    added = [(e.event, e.text, e.reason) for e in result.events if e.event is EventType.ADD]
    assert ("Alice moved to Porto" in [t for _, t, _ in added])  # the conflict the agent never handled
    assert facts_of(local_memory, "alice") == ["Alice has a dog named Rex", "Alice lives in Lisbon",
                                               "Alice moved to Porto"]
    assert local_memory.pipeline.queue.get(result.job_id).status == "done"
    assert local_memory.stats().lm_usage.calls == 5


def test_a_token_budget_also_stops_the_agent(local_memory: Memory) -> None:
    local_memory.add("Alice lives in Lisbon", user_id="alice", categories=["places"])
    lm = ScriptedLM({"MemoryExtract": [extract(fact("Alice moved to Porto", ["t1"], ["places"]))],
                     "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice lives in Porto"}))})
    Pipeline(local_memory, lm, budget=LMBudget(max_calls=50, max_tokens=10))  # spent by the extraction call
    result = local_memory.add([turn("I moved to Porto", "t1")], user_id="alice", infer=True)
    assert result.usage.calls == 1 and result.budget_exhausted is True
    assert facts_of(local_memory, "alice") == ["Alice lives in Lisbon", "Alice moved to Porto"]


def test_deletion_is_soft_and_restorable(local_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice has a dog named Rex", ["t1"], ["possessions"])),
                          extract(fact("Alice no longer has a dog", ["t2"], ["possessions"]))],
        "UpdateMemory": react_script(("delete_memories", {"ids": [0]})),
    })
    Pipeline(local_memory, lm)
    added = local_memory.add([turn("My dog Rex is great", "t1")], user_id="alice", infer=True).events[0]
    deleted = local_memory.add([turn("Rex is gone, I have no dog now", "t2")], user_id="alice", infer=True).events
    assert [(e.event, e.memory_id, e.old_text) for e in deleted] == [
        (EventType.DELETE, added.memory_id, "Alice has a dog named Rex")]
    assert facts_of(local_memory, "alice") == []
    local_memory.restore(added.memory_id or "", user_id="alice")
    assert facts_of(local_memory, "alice") == ["Alice has a dog named Rex"]
    assert [e.event for e in local_memory.history(added.memory_id or "", user_id="alice")] == [
        EventType.ADD, EventType.DELETE, EventType.RESTORE]


def test_hallucinated_id_malformed_args_and_unknown_tool_are_observations(local_memory: Memory) -> None:
    local_memory.add("Alice lives in Lisbon", user_id="alice", categories=["places"])  # a fact (plain text)
    local_memory.add("Alice works as a nurse", user_id="alice", categories=["work"])
    before = {r.id: (r.text, r.version) for r in local_memory.list(user_id="alice").items}
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice moved to Porto", ["t1"], ["places"]))],
        "UpdateMemory": react_script(
            ("update_memory", {"id": 7, "new_text": "Alice lives in Porto"}),
            ("update_memory", {"id": "zero", "new_text": "Alice lives in Porto"}),
            ("delete_memories", {"ids": [1, 42]}),
            ("update_memory", {"id": 0, "new_text": ""}),
            ("teleport_memory", {"id": 0}),
            ("add_memory", {"text": ["Alice", "moved"], "categories": "places"}),
            ("no_op", {}),
        ),
    })
    Pipeline(local_memory, lm)
    result = local_memory.add([turn("I moved to Porto", "t1")], user_id="alice", infer=True)
    after = {r.id: (r.text, r.version) for r in local_memory.list(user_id="alice", kinds=["fact"]).items}
    assert after == before  # nothing touched, nothing deleted
    assert all(e.event is EventType.NOOP for e in result.events) and result.to_agent == 1
    trajectory = [r["user"] for r in lm.requests if r["route"] == "UpdateMemory"][-1]
    observations = re.findall(r"\[\[ ## observation_\d+ ## \]\]\n(.*?)\n", trajectory)
    assert observations[0].startswith("error: there is no memory 7; valid ids are 0-1")
    assert observations[1].startswith("Execution error in update_memory")  # dspy.Tool rejects a non-integer
    assert observations[2] == "error: there is no memory 42; valid ids are 0-1 (nothing was deleted)"
    assert observations[3].startswith("error: new_text is empty")
    assert observations[4].startswith("error: there is no tool named 'teleport_memory'")
    assert observations[5].startswith("Execution error in add_memory")  # arguments of the wrong type
    assert local_memory.list(user_id="alice", deleted=True).total == 0


def test_maintenance_sees_only_facts_of_the_same_user(local_memory: Memory) -> None:
    local_memory.add("Bob likes coffee a lot", user_id="bob", categories=["preferences"])
    local_memory.add([Message(content="I like coffee", id="e1")], user_id="alice")  # an episode of alice
    local_memory.add("Alice likes espresso", user_id="alice", categories=["preferences"])
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice likes coffee", ["t1"]))],
        "UpdateMemory": react_script(("add_memory", {"text": "Alice likes coffee", "categories": ["preferences"]})),
    })
    Pipeline(local_memory, lm)
    result = local_memory.add([turn("Coffee is my thing", "t1")], user_id="alice", infer=True)
    prompt = next(r["user"] for r in lm.requests if r["route"] == "UpdateMemory")
    assert "Bob" not in prompt and "I like coffee" not in prompt and "0: Alice likes espresso" in prompt
    assert [e.event for e in result.events] == [EventType.ADD]
    assert local_memory.list(user_id="bob").items[0].text == "Bob likes coffee a lot"


def test_only_the_conflicts_of_an_add_reach_the_agent_in_one_run(local_memory: Memory) -> None:
    local_memory.add("Alice likes coffee", user_id="alice", categories=["preferences"])
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice now prefers tea over coffee", ["t1"]),
                                  fact("Alice's brother is called Tom", ["t1"], ["family"]),
                                  fact("Alice likes coffee", ["t1"]))],
        "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice prefers tea"})),
    })
    Pipeline(local_memory, lm)
    result = local_memory.add([turn("Tea now, says my brother Tom", "t1")], user_id="alice", infer=True)
    assert [(e.event, e.text) for e in result.events] == [
        (EventType.ADD, "Alice's brother is called Tom"), (EventType.NOOP, "Alice likes coffee"),
        (EventType.UPDATE, "Alice prefers tea")]
    assert result.to_agent == 1 and result.usage.calls == 3
    prompt = next(r["user"] for r in lm.requests if r["route"] == "UpdateMemory")
    assert "F0: Alice now prefers tea over coffee" in prompt and "F1:" not in prompt  # one new fact


def test_without_triage_every_fact_goes_to_the_agent_as_before(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice plays the cello", ["t1"], ["hobbies"]))],
        "UpdateMemory": react_script(("add_memory", {"text": "Alice plays the cello", "categories": ["hobbies"]}),
                                     outputs={"summary": "ADD"}),
    })
    Pipeline(fake_memory, lm, triage=False, summarize=True, budget=None)
    result = fake_memory.add([turn("I practised cello", "t1")], user_id="alice", infer=True)
    assert [e.event for e in result.events] == [EventType.ADD] and result.to_agent == 1
    assert result.usage.calls == 4  # extraction, add_memory, finish, ReAct's final extraction
    assert lm.remaining() == {"MemoryExtract": 0, "UpdateMemory": 0}


@pytest.mark.parametrize("lm_date", [None, "2023-05-07"])
def test_yesterday_in_a_message_of_8_may_2023_is_7_may(fake_memory: Memory, lm_date: str | None) -> None:
    text = "Caroline went to an LGBTQ support group on 7 May 2023"
    lm = ScriptedLM({"MemoryExtract": [extract(fact(text, ["D1:3"], ["events"], date=lm_date))]})
    Pipeline(fake_memory, lm)
    msg = Message(content="I went to a LGBTQ support group yesterday", id="D1:3", name="Caroline", timestamp=MAY8)
    result = fake_memory.add([msg], user_id="caroline", infer=True)
    record = fake_memory.get(result.events[0].memory_id or "", user_id="caroline")
    assert record.observed_at == datetime(2023, 5, 7, tzinfo=UTC)
    assert record.source_ids == ["D1:3"]
    prompt = next(r["user"] for r in lm.requests if r["route"] == "MemoryExtract")
    assert "[D1:3] 2023-05-08T13:56+00:00 (Monday) Caroline (user): I went" in prompt
    # time filters see the resolved date
    assert [r.id for r in fake_memory.list(user_id="caroline", kinds=["fact"],
                                           since=datetime(2023, 5, 7, tzinfo=UTC),
                                           until=datetime(2023, 5, 7, 23, tzinfo=UTC)).items] == [record.id]


def test_nothing_worth_keeping_stores_only_the_episode(fake_memory: Memory) -> None:
    lm = ScriptedLM({"MemoryExtract": [extract()]})
    Pipeline(fake_memory, lm)
    result = fake_memory.add("hi there!", user_id="alice", infer=True)
    assert result.events == [] and result.usage.calls == 1
    episodes = fake_memory.list(user_id="alice").items
    assert [(e.kind, e.text) for e in episodes] == [("episode", "hi there!")]
    assert episodes[0].source_ids and episodes[0].source_ids[0].startswith("m-")  # an id was given
    assert lm.remaining() == {"MemoryExtract": 0}


def test_an_agent_write_takes_the_closest_facts_categories_and_sources(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice plays the cello", ["t2"], ["hobbies"]),
                                  fact("Alice's brother is Tom", ["t1"], ["family"]))],
        "UpdateMemory": react_script(("add_memory", {"text": "Alice's brother is called Tom"}),
                                     ("add_memory", {"text": "Alice plays the cello"})),
    })
    Pipeline(fake_memory, lm, triage=False)
    result = fake_memory.add([turn("My brother Tom visited", "t1"), turn("I practised cello", "t2")],
                             user_id="alice", infer=True)
    records = [fake_memory.get(e.memory_id or "", user_id="alice") for e in result.events]
    assert [(r.text, r.categories, r.source_ids) for r in records] == [
        ("Alice's brother is called Tom", ["family"], ["t1"]),  # matched to the closest extracted fact
        ("Alice plays the cello", ["hobbies"], ["t2"]),
    ]


def test_the_floor_is_configurable(fake_memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_memory.add("Alice likes coffee", user_id="alice", categories=["preferences"])
    monkeypatch.setenv("REMEM_CONFLICT_FLOOR", "0.3")
    with Memory(fake_memory.home.parent / "other", embedder="fake") as memory:
        assert Pipeline(memory, ScriptedLM([])).conflict_floor == 0.3
    assert Pipeline(fake_memory, ScriptedLM([]), conflict_floor=0.95).conflict_floor == 0.95


def test_an_update_may_not_turn_a_memory_into_a_copy_of_another(fake_memory: Memory) -> None:
    fake_memory.add("Alice is allergic to peanuts", user_id="alice", categories=["health"])
    fake_memory.add("Alice is allergic to shellfish", user_id="alice", categories=["health"])

    def agent(request: object) -> dict[str, object]:
        user = str(getattr(request, "user", ""))
        if "tool_name_0" in user:
            return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
        table = dict(re.findall(r"^(\d+): (.*)$", user, flags=re.MULTILINE))
        shellfish = next(int(k) for k, v in table.items() if "shellfish" in v)
        return {"next_thought": "merge", "next_tool_name": "update_memory",
                "next_tool_args": {"id": shellfish, "new_text": "Alice is allergic to peanuts indeed"}}  # cos 0.93

    lm = ScriptedLM({"MemoryExtract": [extract(fact("Alice is allergic to peanuts and shellfish", ["t1"], ["health"]))],
                     "UpdateMemory": agent})
    Pipeline(fake_memory, lm, conflict_floor=0.3)
    result = fake_memory.add([turn("peanuts and shellfish, both", "t1")], user_id="alice", infer=True)
    assert all(e.event is EventType.NOOP for e in result.events)
    observation = re.findall(r"\[\[ ## observation_0 ## \]\]\n(.*?)\n", lm.requests[-1]["user"])[0]
    assert re.fullmatch(r"error: memory \d already says this; delete memory \d instead if it is obsolete", observation)
    assert facts_of(fake_memory, "alice") == ["Alice is allergic to peanuts", "Alice is allergic to shellfish"]
