"""Extraction + maintenance end to end: real dspy.Predict / dspy.ReAct, scripted LM, real edge store."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from remem import EventType, Memory, Message
from remem.pipeline import ScriptedLM, react_script

MAY8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def extract(*facts: dict[str, object]) -> dict[str, object]:
    return {"facts": list(facts)}


def fact(text: str, sources: list[str], categories: list[str] | None = None, date: str | None = None) -> dict[str, object]:
    return {"text": text, "categories": categories or ["preferences"], "source_ids": sources, "date": date}


def turn(text: str, mid: str, when: datetime = MAY8) -> Message:
    return Message(content=text, id=mid, name="Alice", timestamp=when)


def facts_of(memory: Memory, user: str) -> list[str]:
    return sorted(r.text for r in memory.list(user_id=user, kinds=["fact"]).items)


def test_coffee_to_tea_is_an_update_with_old_text_in_history(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice likes coffee", ["t1"])),
                          extract(fact("Alice now prefers tea over coffee", ["t2"]))],
        "UpdateMemory": [
            *react_script(("add_memory", {"text": "Alice likes coffee", "categories": ["preferences"]}),
                          outputs={"summary": "ADD"}),
            *react_script(("update_memory", {"id": 0, "new_text": "Alice prefers tea (she used to like coffee)"}),
                          outputs={"summary": "UPDATE 0"}),
        ],
    })
    from remem.pipeline import Pipeline

    Pipeline(fake_memory, lm)
    first = fake_memory.add([turn("I love coffee", "t1")], user_id="alice", infer=True)
    assert [e.event for e in first.events] == [EventType.ADD]
    second = fake_memory.add([turn("Actually, I like tea more now", "t2")], user_id="alice", infer=True)
    assert [e.event for e in second.events] == [EventType.UPDATE]
    assert second.events[0].memory_id == first.events[0].memory_id  # same id
    assert facts_of(fake_memory, "alice") == ["Alice prefers tea (she used to like coffee)"]
    history = fake_memory.history(first.events[0].memory_id, user_id="alice")
    assert [(e.event, e.old_text) for e in history] == [(EventType.ADD, None), (EventType.UPDATE, "Alice likes coffee")]
    record = fake_memory.get(first.events[0].memory_id, user_id="alice")
    assert record.kind == "fact" and record.source_ids == ["t1", "t2"]
    # the raw turns are kept as episodes, with their ids as sources
    episodes = fake_memory.list(user_id="alice", kinds=["episode"]).items
    assert sorted(e.source_ids[0] for e in episodes) == ["t1", "t2"]
    # the maintenance prompt shows integers, never the memory's UUID
    maintain_prompts = [r["user"] for r in lm.requests if r["route"] == "UpdateMemory"]
    assert "0: Alice likes coffee" in maintain_prompts[-1]
    assert not any(record.id in p for p in maintain_prompts)
    assert second.usage.calls == 4 and second.usage.prompt_tokens > 0 and second.usage.completion_tokens > 0


def test_duplicate_fact_is_ignored_exact_and_near(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice is allergic to peanuts", ["t1"], ["health"])),
                          extract(fact("alice is allergic to  peanuts", ["t2"], ["health"])),
                          extract(fact("Alice is allergic to peanuts!", ["t3"], ["health"]))],
        "UpdateMemory": [
            *react_script(("add_memory", {"text": "Alice is allergic to peanuts", "categories": ["health"]}),
                          outputs={"summary": "ADD"}),
            *react_script(("add_memory", {"text": "alice is allergic to  peanuts", "categories": ["health"]}),
                          outputs={"summary": "ADD"}),
            *react_script(("add_memory", {"text": "Alice is allergic to peanuts!", "categories": ["health"]}),
                          outputs={"summary": "ADD"}),
        ],
    })
    memory = fake_memory
    from remem.pipeline import Pipeline

    Pipeline(memory, lm)
    memory.add([turn("I'm allergic to peanuts", "t1")], user_id="alice", infer=True)
    exact = memory.add([turn("Peanuts: allergic, as I said", "t2")], user_id="alice", infer=True)
    near = memory.add([turn("Really allergic to peanuts", "t3")], user_id="alice", infer=True)
    for result in (exact, near):
        assert [e.event for e in result.events] == [EventType.NOOP]
        assert result.events[0].reason == "duplicate of an existing memory"
    assert facts_of(memory, "alice") == ["Alice is allergic to peanuts"]
    observations = [r["user"] for r in lm.requests if r["route"] == "UpdateMemory"]
    assert any("not added: memory 0 already says this" in o for o in observations)


def test_deletion_is_soft_and_restorable(fake_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice has a dog named Rex", ["t1"], ["possessions"])),
                          extract(fact("Alice no longer has a dog", ["t2"], ["possessions"]))],
        "UpdateMemory": [
            *react_script(("add_memory", {"text": "Alice has a dog named Rex", "categories": ["possessions"]}),
                          outputs={"summary": "ADD"}),
            *react_script(("delete_memories", {"ids": [0]}), outputs={"summary": "DELETE 0"}),
        ],
    })
    from remem.pipeline import Pipeline

    Pipeline(fake_memory, lm)
    added = fake_memory.add([turn("My dog Rex is great", "t1")], user_id="alice", infer=True).events[0]
    deleted = fake_memory.add([turn("Rex is gone, I have no dog now", "t2")], user_id="alice", infer=True).events
    assert [(e.event, e.memory_id, e.old_text) for e in deleted] == [
        (EventType.DELETE, added.memory_id, "Alice has a dog named Rex")]
    assert facts_of(fake_memory, "alice") == []
    fake_memory.restore(added.memory_id, user_id="alice")
    assert facts_of(fake_memory, "alice") == ["Alice has a dog named Rex"]
    assert [e.event for e in fake_memory.history(added.memory_id, user_id="alice")] == [
        EventType.ADD, EventType.DELETE, EventType.RESTORE]


def test_hallucinated_id_malformed_args_and_unknown_tool_are_observations(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline

    fake_memory.add("Alice lives in Lisbon", user_id="alice", categories=["places"])  # a fact (plain text)
    fake_memory.add("Alice works as a nurse", user_id="alice", categories=["work"])
    before = {r.id: (r.text, r.version) for r in fake_memory.list(user_id="alice").items}
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice moved to Porto", ["t1"], ["places"]))],
        "UpdateMemory": react_script(
            ("update_memory", {"id": 7, "new_text": "Alice lives in Porto"}),
            ("update_memory", {"id": "zero", "new_text": "Alice lives in Porto"}),
            ("delete_memories", {"ids": [1, 42]}),
            ("update_memory", {"id": 0, "new_text": ""}),
            ("teleport_memory", {"id": 0}),
            ("add_memory", {"text": ["Alice", "moved"], "categories": "places"}),
            outputs={"summary": "gave up"},
        ),
    })
    Pipeline(fake_memory, lm)
    result = fake_memory.add([turn("I moved to Porto", "t1")], user_id="alice", infer=True)
    after = {r.id: (r.text, r.version) for r in fake_memory.list(user_id="alice", kinds=["fact"]).items}
    assert after == {k: v for k, v in before.items()}  # nothing touched, nothing deleted
    assert all(e.event is EventType.NOOP for e in result.events)
    trajectory = [r["user"] for r in lm.requests if r["route"] == "UpdateMemory"][-1]
    observations = re.findall(r"\[\[ ## observation_\d+ ## \]\]\n(.*?)\n", trajectory)
    assert observations[0].startswith("error: there is no memory 7; valid ids are 0-1")
    assert observations[1].startswith("Execution error in update_memory")  # dspy.Tool rejects a non-integer
    assert observations[2] == "error: there is no memory 42; valid ids are 0-1 (nothing was deleted)"
    assert observations[3].startswith("error: new_text is empty")
    assert observations[4].startswith("error: there is no tool named 'teleport_memory'")
    assert observations[5].startswith("Execution error in add_memory")  # arguments of the wrong type
    assert fake_memory.list(user_id="alice", deleted=True).total == 0


def test_maintenance_sees_only_facts_of_the_same_user(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline

    fake_memory.add("Bob likes coffee a lot", user_id="bob", categories=["preferences"])
    fake_memory.add([Message(content="I like coffee", id="e1")], user_id="alice")  # an episode of alice
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice likes coffee", ["t1"]))],
        "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice likes coffee"}),
                                     ("add_memory", {"text": "Alice likes coffee", "categories": ["preferences"]}),
                                     outputs={"summary": "ADD"}),
    })
    Pipeline(fake_memory, lm)
    result = fake_memory.add([turn("Coffee is my thing", "t1")], user_id="alice", infer=True)
    prompt = next(r["user"] for r in lm.requests if r["route"] == "UpdateMemory")
    assert "Bob" not in prompt and "I like coffee" not in prompt
    assert "(none: this user has no similar memories yet)" in prompt
    assert [e.event for e in result.events] == [EventType.ADD]
    assert fake_memory.list(user_id="bob").items[0].text == "Bob likes coffee a lot"


@pytest.mark.parametrize("lm_date", [None, "2023-05-07"])
def test_yesterday_in_a_message_of_8_may_2023_is_7_may(fake_memory: Memory, lm_date: str | None) -> None:
    from remem.pipeline import Pipeline

    text = "Caroline went to an LGBTQ support group on 7 May 2023"
    lm = ScriptedLM({
        "MemoryExtract": [extract(fact(text, ["D1:3"], ["events"], date=lm_date))],
        "UpdateMemory": react_script(("add_memory", {"text": text, "categories": ["events"]}),
                                     outputs={"summary": "ADD"}),
    })
    Pipeline(fake_memory, lm)
    msg = Message(content="I went to a LGBTQ support group yesterday", id="D1:3", name="Caroline", timestamp=MAY8)
    result = fake_memory.add([msg], user_id="caroline", infer=True)
    record = fake_memory.get(result.events[0].memory_id, user_id="caroline")
    assert record.observed_at == datetime(2023, 5, 7, tzinfo=UTC)
    assert record.source_ids == ["D1:3"]
    prompt = next(r["user"] for r in lm.requests if r["route"] == "MemoryExtract")
    assert "[D1:3] 2023-05-08T13:56+00:00 (Monday) Caroline (user): I went" in prompt
    # time filters see the resolved date
    assert [r.id for r in fake_memory.list(user_id="caroline", kinds=["fact"],
                                           since=datetime(2023, 5, 7, tzinfo=UTC),
                                           until=datetime(2023, 5, 7, 23, tzinfo=UTC)).items] == [record.id]


def test_nothing_worth_keeping_stores_only_the_episode(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline

    lm = ScriptedLM({"MemoryExtract": [extract()]})
    Pipeline(fake_memory, lm)
    result = fake_memory.add("hi there!", user_id="alice", infer=True)
    assert result.events == [] and result.usage.calls == 1
    episodes = fake_memory.list(user_id="alice").items
    assert [(e.kind, e.text) for e in episodes] == [("episode", "hi there!")]
    assert episodes[0].source_ids and episodes[0].source_ids[0].startswith("m-")  # an id was given
    assert lm.remaining() == {"MemoryExtract": 0}


def test_add_without_categories_takes_the_facts_and_cites_its_sources(fake_memory: Memory) -> None:
    from remem.pipeline import Pipeline

    lm = ScriptedLM({
        "MemoryExtract": [extract(fact("Alice plays the cello", ["t2"], ["hobbies"]),
                                  fact("Alice's brother is Tom", ["t1"], ["family"]))],
        "UpdateMemory": react_script(("add_memory", {"text": "Alice's brother is called Tom"}),
                                     ("add_memory", {"text": "Alice plays the cello"}),
                                     outputs={"summary": "ADD, ADD"}),
    })
    Pipeline(fake_memory, lm)
    result = fake_memory.add([turn("My brother Tom visited", "t1"), turn("I practised cello", "t2")],
                             user_id="alice", infer=True)
    records = [fake_memory.get(e.memory_id, user_id="alice") for e in result.events]  # type: ignore[arg-type]
    assert [(r.text, r.categories, r.source_ids) for r in records] == [
        ("Alice's brother is called Tom", ["family"], ["t1"]),  # matched to the closest extracted fact
        ("Alice plays the cello", ["hobbies"], ["t2"]),
    ]
