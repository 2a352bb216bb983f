"""A chaotic LM (what a tiny local model looks like): random garbage, wrong types, invented ids, timeouts.

Whatever it says, every turn must end up either processed or in the pending queue, stored as an episode, and
nothing outside the user's own facts may change.
"""

from __future__ import annotations

import random

import pytest

from remem import ExtractionError, MaintenanceError, Memory, Message
from remem.pipeline import Pipeline, ScriptedLM
from remem.pipeline.scripted import Reply


def chaos(seed: int, n: int) -> list[Reply]:
    rng = random.Random(seed)
    choices: list[Reply] = [
        "",
        "I'm sorry, I can't help with that.",
        '{"facts": [{"text": "Alice likes tea"',  # truncated JSON
        {"facts": "Alice likes tea"},
        {"facts": [{"text": "Alice likes tea", "categories": ["preferences"], "source_ids": ["t0"]}]},
        {"facts": [{"text": "Alice owns a red bike", "source_ids": ["nope"], "date": "soon"}]},
        {"next_thought": "x", "next_tool_name": "update_memory", "next_tool_args": {"id": 99, "new_text": "hacked"}},
        {"next_thought": "x", "next_tool_name": "delete_memories", "next_tool_args": {"ids": [0, 1, 2, 3, 4, 5]}},
        {"next_thought": "x", "next_tool_name": "add_memory",
         "next_tool_args": {"text": "Alice likes tea", "categories": ["preferences"]}},
        {"next_thought": "x", "next_tool_name": "rm -rf", "next_tool_args": {}},
        {"next_thought": "x", "next_tool_name": "finish", "next_tool_args": {}},
        {"next_thought": "x", "next_tool_name": "add_memory", "next_tool_args": "not a dict"},
        {"reasoning": "r", "summary": "done"},
        TimeoutError("the local model timed out"),
    ]
    weights = [1, 1, 1, 1, 4, 2, 2, 1, 3, 1, 4, 1, 6, 1]  # sometimes right, as small models are
    return rng.choices(choices, weights=weights, k=n)


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_a_chaotic_model_never_loses_or_leaks_a_turn(fake_memory: Memory, seed: int) -> None:
    fake_memory.add("Bob's bike is blue", user_id="bob", categories=["possessions"])
    bob_before = [(r.id, r.text, r.version) for r in fake_memory.list(user_id="bob").items]
    pipeline = Pipeline(fake_memory, ScriptedLM(chaos(seed=seed, n=3000), default="garbage"), retries=1)
    failures = 0
    texts = [f"message number {i}: I like tea and bikes" for i in range(12)]
    for i, text in enumerate(texts):
        try:
            fake_memory.add([Message(content=text, id=f"t{i}")], user_id="alice", infer=True)
        except (ExtractionError, MaintenanceError):
            failures += 1
    episodes = {r.text for r in fake_memory.list(user_id="alice", kinds=["episode"], limit=100).items}
    assert episodes == set(texts)  # every turn is recoverable
    assert pipeline.queue.count("pending") == failures
    assert pipeline.queue.count("done") == len(texts) - failures
    assert 0 < failures < len(texts)  # the seed exercises both paths
    assert [(r.id, r.text, r.version) for r in fake_memory.list(user_id="bob").items] == bob_before
    for fact in fake_memory.list(user_id="alice", kinds=["fact"], limit=100).items:
        assert fact.text != "hacked"
        assert fake_memory.history(fact.id, user_id="alice")[0].event.value == "ADD"


@pytest.mark.parametrize("text", ["a fact with a NUL \x00 inside", "half an emoji \ud83d", "x" * 2_001])
def test_an_unusable_fact_text_from_the_model_is_retried_then_a_typed_error(fake_memory: Memory, text: str) -> None:
    """A fact text the store cannot take (NUL, lone surrogate, over REMEM_MAX_TEXT_CHARS) is unusable output:
    retried, then ExtractionError with the raw output; nothing stored, the turn stays queued."""
    fake_memory.settings.max_text_chars = 2_000
    bad = {"facts": [{"text": text, "source_ids": ["t1"]}]}
    Pipeline(fake_memory, ScriptedLM({"MemoryExtract": [bad, bad, bad]}))
    with pytest.raises(ExtractionError):
        fake_memory.add([Message(content="hello", id="t1")], user_id="alice", infer=True)
    assert fake_memory.list(user_id="alice", kinds=["fact"]).total == 0
    assert len(fake_memory.pipeline.queue.pending()) == 1
