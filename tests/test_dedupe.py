"""A near-duplicate that changes something is not a duplicate (remem.dedupe), in triage and in the writer."""

from __future__ import annotations

import pytest

from remem import Memory
from remem.dedupe import adds_nothing
from remem.models import Message
from remem.pipeline import Pipeline
from remem.pipeline.scripted import ScriptedLM, react_script

CHANGES = [  # (known, new): cosine 0.93-0.99 with the packaged MiniLM, yet each new fact changes something
    ("Alice is allergic to peanuts", "Alice is not allergic to peanuts"),
    ("Alice takes 10 mg of lisinopril daily", "Alice takes 40 mg of lisinopril daily"),
    ("Alice's dentist appointment is on Monday", "Alice's dentist appointment is on Tuesday"),
    ("Alice's locker code is 4821", "Alice's locker code is 9377"),
    ("Alice stays in room 101", "Alice stays in room 102"),
    ("Alice's blood type is A+", "Alice's blood type is B+"),
]


@pytest.mark.parametrize(("known", "new"), CHANGES)
def test_a_changed_word_is_not_a_duplicate(known: str, new: str) -> None:
    assert not adds_nothing(new, known)


def test_a_restatement_with_no_new_word_is() -> None:
    assert adds_nothing("Alice is allergic to the peanuts", "Alice is allergic to peanuts")
    assert adds_nothing("alice: allergic to peanuts!", "Alice is allergic to peanuts")


@pytest.mark.parametrize(("known", "new"), CHANGES)
def test_triage_sends_a_near_duplicate_that_changes_something_to_the_agent(tmp_path, known: str, new: str) -> None:
    with Memory(tmp_path / "m") as memory:  # the packaged embedder: the cosines the finding measured
        memory.add(known, user_id="alice", categories=["health"])
        [old] = memory.list(user_id="alice").items
        lm = ScriptedLM({
            "MemoryExtract": [{"facts": [{"text": new, "source_ids": ["t1"]}]}],
            "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": new})),
        })
        Pipeline(memory, lm)
        result = memory.add([Message(content=new, id="t1")], user_id="alice", infer=True)
        assert [e.event for e in result.events if e.memory_id == old.id][-1] == "UPDATE"
        assert [r.text for r in memory.list(user_id="alice", kinds=["fact"]).items] == [new]


def test_the_writer_keeps_a_near_duplicate_that_changes_something(tmp_path) -> None:
    with Memory(tmp_path / "m") as memory:
        memory.add("Alice's locker code is 4821", user_id="alice")
        from remem.models import MemoryRecord

        new = MemoryRecord(user_id="alice", text="Alice's locker code is 9377", kind="fact")
        [event] = memory.writer.insert([new], near_duplicate=0.9)
        assert event.event == "ADD"
        same = MemoryRecord(user_id="alice", text="Alice's locker code is 4821 .", kind="fact")
        [noop] = memory.writer.insert([same], near_duplicate=0.9)
        assert noop.event == "NOOP"
