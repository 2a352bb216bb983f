"""Graph memory through the LLM pipeline and the chat agent: real dspy.Predict/ReAct, the scripted LM, the real
edge store and SQLite history. The two-hop question, a move that closes the old edge, resolution with the LM's
confirmation step, and what the graph costs per turn (the scripted LM's counters)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remem import Memory, Message
from remem.graph.signatures import EntityMatch, TripletExtract
from remem.pipeline import Agent, Pipeline, ScriptedLM, react_script

JAN = datetime(2024, 1, 10, 9, tzinfo=UTC)
MAY = datetime(2024, 5, 8, 13, 56, tzinfo=UTC)


def turn(text: str, mid: str, when: datetime) -> Message:
    return Message(content=text, id=mid, name="Alice", timestamp=when)


def fact(text: str, sources: list[str], categories: list[str] | None = None) -> dict[str, Any]:
    return {"text": text, "categories": categories or ["family"], "source_ids": sources, "date": None}


def triplet(subject: str, relation: str, obj: str, sources: list[str], *, subject_type: str = "person",
            object_type: str = "place", valid_from: str | None = None, valid_to: str | None = None,
            subject_hint: str | None = None, object_hint: str | None = None) -> dict[str, Any]:
    return {"subject": subject, "subject_type": subject_type, "subject_hint": subject_hint, "relation": relation,
            "object": obj, "object_type": object_type, "object_hint": object_hint, "source_ids": sources,
            "valid_from": valid_from, "valid_to": valid_to}


@pytest.fixture
def graph_memory(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "graph", embedder="fake", graph=True) as m:
        yield m


def test_two_hop_question_is_answered_from_graph_facts_no_flat_memory_holds(graph_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [fact("Alice's sister is Maya", ["t1"])]},
                          {"facts": [fact("Maya moved to Lisbon in March 2024", ["t2"], ["places"])]}],
        TripletExtract: [
            {"triplets": [triplet("Maya", "sister_of", "Alice", ["t1"], object_type="person",
                                  subject_hint="Alice's sister")]},
            {"triplets": [triplet("Maya", "lives_in", "Lisbon", ["t2"], valid_from="2024-03-01")]},
        ],
    })
    Pipeline(graph_memory, lm)
    graph_memory.add([turn("My sister Maya is visiting next week", "t1", JAN)], user_id="alice", infer=True)
    graph_memory.add([turn("Maya moved to Lisbon in March", "t2", MAY)], user_id="alice", infer=True)
    # triage: both facts are unlike anything known (fake-embedder cosine 0.46 < the 0.7 floor), so they are ADDs
    # without the UpdateMemory agent: 2 turns cost 2 MemoryExtract + 2 TripletExtract calls, nothing more
    assert lm.remaining() == {"MemoryExtract": 0, "TripletExtract": 0}
    assert [r["route"] for r in lm.requests] == ["MemoryExtract", "TripletExtract"] * 2

    question = "where does Alice's sister live now?"
    facts = [r.text for r in graph_memory.list(user_id="alice", kinds=["fact"]).items]
    assert sorted(facts) == ["Alice's sister is Maya", "Maya moved to Lisbon in March 2024"]
    assert not any("sister" in f and "Lisbon" in f for f in facts)  # no single flat memory answers it

    one_hop = graph_memory.graph.neighbours(question, user_id="alice", hops=1)
    assert [f.text for f in one_hop.facts] == ["Maya is sister of Alice"]
    two_hops = graph_memory.graph.neighbours(question, user_id="alice", hops=2)
    assert [(f.text, f.hops, f.source_ids) for f in two_hops.facts] == [
        ("Maya is sister of Alice", 0, ["t1"]), ("Maya lives in Lisbon (since 2024-03-01)", 1, ["t2"])]
    assert [e.name for e in two_hops.matched] == ["Alice"]

    hits = graph_memory.search(question, user_id="alice", limit=5, kinds=["fact"], graph=True)
    graph_hits = [h for h in hits if "graph" in h.signals]
    assert [h.record.text for h in graph_hits] == ["Maya is sister of Alice", "Maya lives in Lisbon (since 2024-03-01)"]
    assert {s for h in graph_hits for s in h.source_ids} == {"t1", "t2"}
    assert all(h.record.metadata["graph_relation"] for h in graph_hits)
    plain = graph_memory.search(question, user_id="alice", limit=5, kinds=["fact"])
    assert not any("graph" in h.signals for h in plain)


def test_the_chat_agent_walks_the_graph_with_its_search_graph_tool(graph_memory: Memory) -> None:
    g = graph_memory.graph
    g.add({"name": "Maya", "type": "person"}, "sister_of", {"name": "Alice", "type": "person"}, user_id="alice",
          source_ids=["t1"])
    g.add({"name": "Maya", "type": "person"}, "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice",
          source_ids=["t2"], valid_from=datetime(2024, 3, 1, tzinfo=UTC))
    g.add({"name": "Bob", "type": "person"}, "lives_in", {"name": "Oslo", "type": "place"}, user_id="bob")
    lm = ScriptedLM({"ResponseGenerator": react_script(
        ("search_graph", {"entity_or_text": "Alice's sister", "hops": 2}),
        ("search_graph", {"entity_or_text": "Bob", "hops": 1}),
        outputs={"response": "Your sister Maya lives in Lisbon.", "save_memory": False})})
    reply = Agent(graph_memory, lm=lm).reply("alice", "Where does my sister live now?", now=MAY)
    assert reply.response == "Your sister Maya lives in Lisbon."
    first, second = reply.tool_calls
    assert first.name == "search_graph" and first.texts == ["Maya is sister of Alice",
                                                            "Maya lives in Lisbon (since 2024-03-01)"]
    assert second.texts == [] and second.found == []  # bob's graph is not alice's
    prompt = [r["user"] for r in lm.requests if r["route"] == "ResponseGenerator"][-1]
    assert "Maya lives in Lisbon (since 2024-03-01) [t2]" in prompt and "Oslo" not in prompt
    # the tool is offered only with graph memory on
    assert "search_graph" in lm.requests[0]["system"]


def test_the_tool_is_not_offered_with_graph_memory_off(fake_memory: Memory) -> None:
    lm = ScriptedLM({"ResponseGenerator": react_script(outputs={"response": "Hi.", "save_memory": False})})
    Agent(fake_memory, lm=lm).reply("alice", "Hello")
    assert "search_graph" not in lm.requests[0]["system"]


def test_moving_from_berlin_to_lisbon_closes_one_edge_and_opens_another(graph_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [fact("Alice lives in Berlin", ["t1"], ["places"])]},
                          {"facts": [fact("Alice moved from Berlin to Lisbon in March 2024", ["t2"], ["places"])]}],
        TripletExtract: [
            {"triplets": [triplet("Alice", "lives_in", "Berlin", ["t1"])]},
            {"triplets": [triplet("Alice", "lives_in", "Berlin", ["t2"], valid_to="2024-03-01"),
                          triplet("Alice", "lives_in", "Lisbon", ["t2"], valid_from="March")]},
        ],
    })
    Pipeline(graph_memory, lm)
    graph_memory.add([turn("I live in Berlin", "t1", datetime(2023, 2, 1, tzinfo=UTC))], user_id="alice", infer=True)
    graph_memory.add([turn("I moved from Berlin to Lisbon in March", "t2", MAY)], user_id="alice", infer=True)
    assert lm.remaining() == {"MemoryExtract": 0, "TripletExtract": 0}  # no agent call: cosine 0.52 < 0.7
    g = graph_memory.graph
    view = g.view(user_id="alice")
    names = {e.id: e.name for e in view.entities}
    rels = {names[r.object_id]: r for r in view.relations}
    berlin, lisbon = rels["Berlin"], rels["Lisbon"]
    march = datetime(2024, 3, 1, tzinfo=UTC)  # "March" in a message of 8 May 2024, resolved by the host
    assert (berlin.valid_from, berlin.valid_to, berlin.source_ids) == (None, march, ["t1", "t2"])
    assert berlin.expired_at is not None and berlin.deleted_at is None  # closed, not deleted
    assert (lisbon.valid_from, lisbon.valid_to, lisbon.expired_at) == (march, None, None)
    assert [e.event.value for e in g.history(berlin.id, user_id="alice")] == ["ADD", "CLOSE"]

    def lives(as_of: datetime | None) -> list[str]:
        return [f.text for f in g.neighbours("Alice", user_id="alice", as_of=as_of).facts]

    assert lives(datetime(2023, 6, 1, tzinfo=UTC)) == ["Alice lives in Berlin (until 2024-03-01)"]
    assert lives(datetime(2024, 5, 9, tzinfo=UTC)) == ["Alice lives in Lisbon (since 2024-03-01)"]
    assert lives(None) == ["Alice lives in Lisbon (since 2024-03-01)", "Alice lives in Berlin (until 2024-03-01)"]
    # "where did Alice live in 2023?": the time expression picks the relation that held then
    hits = graph_memory.search("where did Alice live in 2023?", user_id="alice", graph=True, limit=10)
    assert [h.record.text for h in hits if "graph" in h.signals] == ["Alice lives in Berlin (until 2024-03-01)"]


def test_a_single_valued_relation_closes_the_old_one_by_itself(graph_memory: Memory) -> None:
    """Only "lives_in Lisbon since March" is extracted: the deterministic rule for lives_in closes Berlin."""
    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [fact("Alice lives in Berlin", ["t1"])]},
                          {"facts": [fact("Alice lives in Lisbon since March 2024", ["t2"])]}],
        TripletExtract: [{"triplets": [triplet("Alice", "lives_in", "Berlin", ["t1"])]},
                         {"triplets": [triplet("Alice", "Lives in", "Lisbon", ["t2"], valid_from="2024-03-01")]}],
    })
    Pipeline(graph_memory, lm)
    graph_memory.add([turn("I live in Berlin", "t1", JAN)], user_id="alice", infer=True)
    graph_memory.add([turn("Living in Lisbon since March!", "t2", MAY)], user_id="alice", infer=True)
    facts = graph_memory.graph.neighbours("Alice", user_id="alice").facts
    assert [f.text for f in facts] == ["Alice lives in Lisbon (since 2024-03-01)",
                                       "Alice lives in Berlin (until 2024-03-01)"]
    closed = facts[1].relation
    assert closed.expired_at is not None
    [close] = [e for e in graph_memory.graph.history(closed.id, user_id="alice") if e.event.value == "CLOSE"]
    assert close.reason == "contradicted by lives_in Lisbon" and close.actor == "api"  # add()'s actor


def test_resolution_merges_spellings_and_asks_the_lm_only_for_the_ambiguous_maya(graph_memory: Memory) -> None:
    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [fact(f"fact {i}", [f"t{i}"])]} for i in range(1, 7)],
        TripletExtract: [
            {"triplets": [triplet("Maya", "sister_of", "Alice", ["t1"], object_type="person",
                                  subject_hint="Alice's sister")]},
            {"triplets": [triplet("maya", "lives_in", "Lisbon", ["t2"])]},
            {"triplets": [triplet("my sister Maya", "likes", "surfing", ["t3"], object_type="thing")]},
            {"triplets": [triplet("Maya", "works_at", "Acme", ["t4"], object_type="organisation",
                                  subject_hint="Alice's colleague at Acme")]},
            {"triplets": [triplet("Alice", "visited", "New York City", ["t5"])]},
            {"triplets": [triplet("Alice", "loves", "New York", ["t6"])]},  # cosine 0.83: ambiguous
        ],
        EntityMatch: [{"match": -1},  # "the colleague is not the sister": a new node
                      {"match": 0}],  # "New York" is "New York City"
    })
    Pipeline(graph_memory, lm)
    texts = ["My sister Maya is visiting", "maya lives in Lisbon now", "My sister Maya loves surfing",
             "My colleague Maya at Acme (not my sister!) got promoted", "I visited New York City",
             "I love New York"]
    for i, text in enumerate(texts, start=1):
        graph_memory.add([turn(text, f"t{i}", MAY)], user_id="alice", infer=True)
    assert lm.remaining() == {"MemoryExtract": 0, TripletExtract.__name__: 0, EntityMatch.__name__: 0}
    asked = [r for r in lm.requests if r["route"] == "EntityMatch"]
    assert len(asked) == 2  # "maya" and "my sister Maya" merged by name, without the LM
    assert "Alice's colleague at Acme" in asked[0]["user"] and "Alice's sister" in asked[0]["user"]
    assert "Maya lives in Lisbon" in asked[0]["user"]  # the candidate is shown with its facts
    g = graph_memory.graph
    mayas = [e for e in g.view(user_id="alice").entities if e.name == "Maya"]
    assert sorted(e.hint or "" for e in mayas) == ["Alice's colleague at Acme", "Alice's sister"]
    sister = next(e for e in mayas if e.hint == "Alice's sister")
    # two Mayas: every sentence tells them apart by their hints
    assert sorted(f.text for f in g.neighbours(sister.id, user_id="alice").facts) == [
        "Maya (Alice's sister) is sister of Alice", "Maya (Alice's sister) likes surfing",
        "Maya (Alice's sister) lives in Lisbon"]
    colleague = next(e for e in mayas if e.hint != "Alice's sister")
    assert [f.text for f in g.neighbours(colleague.id, user_id="alice").facts] == [
        "Maya (Alice's colleague at Acme) works at Acme"]
    [nyc] = [e for e in g.view(user_id="alice").entities if e.name == "New York City"]
    assert nyc.aliases == ["New York"] and "0: New York City (place)" in asked[1]["user"]
    assert sorted(f.text for f in g.neighbours("New York", user_id="alice").facts) == [
        "Alice loves New York City", "Alice visited New York City"]


def test_graph_cost_per_turn_is_one_extraction_call(tmp_path: Path) -> None:
    """The same turn with graph memory off and on: the graph adds exactly the TripletExtract call."""
    def run(graph: bool) -> Any:
        lm = ScriptedLM({
            "MemoryExtract": [{"facts": [fact("Alice's sister Maya moved to Lisbon in March 2024", ["t1"])]}],
            TripletExtract: [{"triplets": [
                triplet("Maya", "sister_of", "Alice", ["t1"], object_type="person"),
                triplet("Maya", "lives_in", "Lisbon", ["t1"], valid_from="2024-03-01")]}],
        })
        with Memory(tmp_path / f"cost-{graph}", embedder="fake", graph=graph, lm=lm) as m:
            result = m.add([turn("My sister Maya moved to Lisbon in March", "t1", MAY)], user_id="alice",
                           infer=True)
        return result.usage, lm

    off, _ = run(False)
    on, lm = run(True)
    [extract] = [r for r in lm.requests if r["route"] == "TripletExtract"]
    assert on.calls - off.calls == 1
    # the scripted LM counts len(text) // 4 tokens: the extra prompt is exactly the TripletExtract request
    assert on.prompt_tokens - off.prompt_tokens == (len(extract["system"]) + len(extract["user"])) // 4
    assert on.completion_tokens > off.completion_tokens
    print(f"graph adds per turn: {on.calls - off.calls} call, {on.prompt_tokens - off.prompt_tokens} prompt "
          f"tokens, {on.completion_tokens - off.completion_tokens} completion tokens")


def test_bench_runs_graph_off_and_on_in_one_run(tmp_path: Path) -> None:
    """`remem bench locomo --lm scripted:… --graph` end to end on the tiny LoCoMo file: one ingest by the LLM
    pipeline with graph memory on; remem-both (graph off) and remem-both+graph (on) asked the same questions."""
    import json

    from typer.testing import CliRunner

    from remem.cli import app

    data = Path(__file__).parent / "data" / "locomo_tiny.json"
    speaker = json.loads(data.read_text())[0]["conversation"]["speaker_a"]
    every = {  # one reply that parses for every signature (DSPy ignores fields a signature does not have)
        "facts": [fact(f"{speaker} likes painting", [])],
        "triplets": [triplet(speaker, "likes", "painting", [], object_type="thing")],
        "next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}, "reasoning": "Done.",
        "summary": "NOOP", "match": -1, "answer": "painting", "label": "CORRECT",
    }
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"routes": {}, "default": every}))
    out = tmp_path / "res"
    result = CliRunner().invoke(app, ["bench", "locomo", "--data", str(data), "--out", str(out), "--embedder",
                                      "fake", "--lm", f"scripted:{script}", "--graph"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "locomo.json").read_text())
    assert {"remem-both", "remem-both+graph"} <= set(report["systems"])
    assert set(report["answers"]) == {"remem-hybrid+expand", "remem-both", "remem-both+graph"}
    lm = report["config"]["ingest_lm"]
    assert report["config"]["graph"] is True and lm["calls"] > 0 and lm["calls_per_turn"] > 0
    assert "LLM pipeline ingest with graph memory" in (out / "locomo.md").read_text()
    # 2 sessions x (MemoryExtract + TripletExtract): "likes painting" is new in session 1 (triage ADDs it without
    # the agent) and an exact duplicate in session 2 (a NOOP without the agent)
    assert lm["calls"] == 4
    # the graph fact's provenance counts like any memory's: "Caroline likes painting" was seen in both sessions
    from remem.bench.locomo import load_locomo
    from remem.bench.runner import run_retrieval

    run = run_retrieval("locomo", load_locomo(data), embedder="fake", home=tmp_path, baselines=False,
                        facts_lm=ScriptedLM({}, default=every), graph=True)
    every_turn = ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    asked = "conv-x/q0"  # "When did Caroline go to the support group?" names Caroline
    assert every_turn in run.systems["remem-both+graph"].ranked[asked]
    assert every_turn not in run.systems["remem-both"].ranked[asked]
    no_lm = CliRunner().invoke(app, ["bench", "locomo", "--data", str(data), "--out", str(out), "--embedder",
                                     "fake", "--graph"])
    assert no_lm.exit_code != 0 and "--graph needs --lm" in str(no_lm.exception or no_lm.output)
