"""Graph memory as a library (``memory.graph``), without an LM: on SQLite and on a real Postgres 16, the edge
store and the fake embedder. Time rules, resolution rules, isolation, erasure, errors."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remem import ConfigurationError, Memory, NotFoundError, ValidationError
from remem.graph import EntityRef, Graph, Thresholds, Triplet
from remem.graph.names import canonical_name, name_key, relation_name
from remem.parts import parts_of

D2020 = datetime(2020, 1, 1, tzinfo=UTC)
D2023 = datetime(2023, 6, 1, tzinfo=UTC)
MARCH = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def gm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with Memory(tmp_path / "g", embedder="fake", database_url=url, graph=True) as m:
        yield m


def person(name: str, hint: str | None = None) -> EntityRef:
    return EntityRef(name=name, type="person", hint=hint)


def place(name: str) -> EntityRef:
    return EntityRef(name=name, type="place")


def test_names_are_canonicalised() -> None:
    assert canonical_name("my sister Maya") == ("Maya", "my sister")
    assert canonical_name("Alice's sister Maya") == ("Maya", "Alice's sister")
    assert canonical_name("the Eiffel Tower") == ("Eiffel Tower", "the")
    assert canonical_name("my sister") == ("my sister", None)
    assert {name_key(n) for n in ("Maya", "maya", "my sister Maya", " MAYA! ")} == {"maya"}
    assert name_key("São Paulo") == "sao paulo"
    assert relation_name("Lives in") == "lives_in" and relation_name("works-at") == "works_at"
    with pytest.raises(ValidationError, match="snake_case"):
        relation_name("is the sister of, and also lives with")


def test_a_move_closes_the_edge_and_as_of_still_answers_the_past(gm: Memory) -> None:
    g = gm.graph
    first = g.add(person("Alice"), "lives_in", place("Berlin"), user_id="alice", valid_from=D2020, source_ids=["t1"])
    assert first.created and [e.event.value for e in first.events] == ["ADD", "ADD", "ADD"]  # 2 entities + edge
    moved = g.add("Alice", "lives_in", place("Lisbon"), user_id="alice", valid_from=MARCH, source_ids=["t2"])
    [closed] = moved.closed
    assert closed.id == first.relation.id and closed.valid_to == MARCH and closed.expired_at is not None
    assert moved.relation.valid_from == MARCH and moved.relation.is_open
    assert [f.text for f in g.neighbours("Alice", user_id="alice", as_of=D2023).facts] == [
        "Alice lives in Berlin (from 2020-01-01 until 2024-03-01)"]
    assert [f.text for f in g.neighbours("Alice", user_id="alice", as_of=datetime(2024, 4, 1, tzinfo=UTC)).facts] \
        == ["Alice lives in Lisbon (since 2024-03-01)"]
    assert [f.text for f in g.neighbours("alice", user_id="alice", since=datetime(2024, 1, 1, tzinfo=UTC),
                                          until=datetime(2024, 12, 31, tzinfo=UTC)).facts] == [
        "Alice lives in Lisbon (since 2024-03-01)", "Alice lives in Berlin (from 2020-01-01 until 2024-03-01)"]
    # older news never closes newer facts: it is stored as ended when the next known one began (Berlin, 2020,
    # though Berlin has ended: otherwise Paris and Berlin would both hold in 2021)
    older = g.add("Alice", "lives_in", place("Paris"), user_id="alice", valid_from=datetime(2018, 1, 1, tzinfo=UTC))
    assert older.closed == [] and older.relation.valid_to == D2020
    assert g.relation(moved.relation.id, user_id="alice").is_open
    # the same open relation seen again: its sources grow, no twin
    again = g.add("Alice", "lives_in", "Lisbon", user_id="alice", source_ids=["t9"])
    assert not again.created and again.relation.id == moved.relation.id
    assert again.relation.source_ids == ["t2", "t9"] and [e.event.value for e in again.events] == ["UPDATE"]
    assert g.add("Alice", "lives_in", "Lisbon", user_id="alice").events == []  # nothing new: nothing recorded
    # an ended relation told again (a retried pipeline job) is the same relation, not a twin
    past = Triplet(subject=person("Alice"), relation="lived_in", object=place("Rome"), valid_to=D2020,
                   source_ids=["t5"])
    first_past = g.add_many([past], user_id="alice")[0].relation
    retried = g.add_many([past.model_copy(update={"source_ids": ["t6"]})], user_id="alice")[0]
    assert not retried.created and retried.relation.id == first_past.id and retried.relation.source_ids == ["t5", "t6"]
    assert retried.relation.expired_at is None  # it ended in the world; remem did not retire it
    # a relation without a start that replaces one starts when it was said
    said = datetime(2024, 9, 1, tzinfo=UTC)
    porto = g.add("Alice", "lives_in", place("Porto"), user_id="alice", observed_at=said)
    assert porto.relation.valid_from == said and porto.closed[0].valid_to == said
    # multi-valued relations do not close each other
    g.add("Alice", "likes", EntityRef(name="coffee"), user_id="alice")
    assert not g.add("Alice", "likes", EntityRef(name="tea"), user_id="alice").closed


def test_close_delete_restore_are_events_and_never_lose_the_edge(gm: Memory) -> None:
    g = gm.graph
    rel = g.add(person("Alice"), "works_at", EntityRef(name="Acme", type="organisation"), user_id="alice").relation
    closed = g.close(rel.id, user_id="alice", valid_to=MARCH, reason="left the job", actor="web")
    assert closed.valid_to == MARCH and closed.expired_at is not None
    with pytest.raises(ValidationError, match="already ended"):
        g.close(rel.id, user_id="alice")
    other = g.add("Alice", "likes", EntityRef(name="tea"), user_id="alice").relation
    g.delete(other.id, user_id="alice", reason="wrong")
    assert [f.text for f in g.neighbours("Alice", user_id="alice").facts] == ["Alice works at Acme (until 2024-03-01)"]
    with pytest.raises(NotFoundError):
        g.delete(other.id, user_id="alice")
    g.restore(other.id, user_id="alice")
    assert len(g.neighbours("Alice", user_id="alice").facts) == 2
    history = g.history(rel.id, user_id="alice")
    assert [(e.event.value, e.actor, e.reason) for e in history] == [("ADD", "api", None),
                                                                      ("CLOSE", "web", "left the job")]
    assert history[-1].snapshot["valid_to"].startswith("2024-03-01")
    assert [e.event.value for e in g.history(other.id, user_id="alice")] == ["ADD", "DELETE", "RESTORE"]
    live = g.add("Alice", "likes", EntityRef(name="chess"), user_id="alice", valid_from=MARCH).relation
    with pytest.raises(ValidationError, match="before"):
        g.close(live.id, user_id="alice", valid_to=D2020)


def test_resolution_without_an_lm_merges_spellings_and_keeps_hinted_namesakes_apart(gm: Memory) -> None:
    g = gm.graph
    sister = g.add(person("Maya", "Alice's sister"), "sister_of", person("Alice"), user_id="alice")
    same = [g.add(person("maya"), "likes", EntityRef(name="surfing"), user_id="alice"),
            g.add(person("my sister Maya"), "lives_in", place("Lisbon"), user_id="alice")]
    assert {c.relation.subject_id for c in same} == {sister.relation.subject_id}
    colleague = g.add(person("Maya", "Alice's colleague at Acme"), "works_at",
                      EntityRef(name="Acme", type="organisation"), user_id="alice")
    assert colleague.relation.subject_id != sister.relation.subject_id  # hints disagree: two people
    mayas = sorted((e.hint or "") for e in g.view(user_id="alice").entities if e.name == "Maya")
    assert mayas == ["Alice's colleague at Acme", "Alice's sister"]
    # a hinted mention picks its namesake; spelling variants by embedding join the node as aliases
    pick = g.add(person("Maya", "my colleague"), "likes", EntityRef(name="chess"), user_id="alice")
    assert pick.relation.subject_id == colleague.relation.subject_id
    g.add(place("New York City"), "located_in", place("USA"), user_id="alice")
    nyc = g.add(person("Alice"), "visited", place("new york city!"), user_id="alice")
    assert [e.name for e in nyc.entities] == ["Alice", "New York City"]
    # below the "same" threshold and without an LM, a similar name is another entity ...
    ny = g.add(person("Alice"), "visited", place("New York"), user_id="alice")
    assert ny.relation.object_id != nyc.relation.object_id
    # ... at or above it (fake embedder: "San Francisco" / "San Francisco Bay" 0.79), an alias of the same one
    loose = Graph(parts_of(gm), thresholds=Thresholds(same=0.75, maybe=0.6))
    sf = loose.add("Alice", "visited", place("San Francisco"), user_id="alice").relation.object_id
    bay = loose.add("Alice", "likes", place("San Francisco Bay"), user_id="alice")
    assert bay.relation.object_id == sf and bay.entities[1].aliases == ["San Francisco Bay"]
    assert loose.neighbours("san francisco bay", user_id="alice").matched[0].id == sf
    # a person and a place may share a name
    paris_person = g.add(person("Paris"), "friend_of", person("Alice"), user_id="alice")
    assert [(e.name, e.type) for e in paris_person.entities] == [("Paris", "person"), ("Alice", "person")]
    assert len([e for e in g.view(user_id="alice").entities if e.name == "Paris"]) == 1
    g.add("Alice", "visited", place("Paris"), user_id="alice")
    assert len([e for e in g.view(user_id="alice").entities if e.name == "Paris"]) == 2
    # a wrong split is joined by hand: relations move, names become aliases, a MERGE event keeps the other
    a = g.add(person("Bob"), "likes", EntityRef(name="jazz"), user_id="alice").relation.subject_id
    b = g.add(person("Robert", "Bob"), "likes", EntityRef(name="golf"), user_id="alice").relation.subject_id
    assert a != b
    kept = g.merge(a, b, user_id="alice")
    assert kept.aliases == ["Robert"]
    assert sorted(f.text for f in g.neighbours("Bob", user_id="alice").facts) == ["Bob likes golf", "Bob likes jazz"]
    assert [e.event.value for e in g.history(b, user_id="alice")][-1] == "MERGE"
    with pytest.raises(NotFoundError):
        g.entity(b, user_id="alice")


def test_users_are_isolated_in_every_graph_call(gm: Memory) -> None:
    g = gm.graph
    mine = g.add(person("Alice"), "lives_in", place("Lisbon"), user_id="alice").relation
    theirs = g.add(person("Bob"), "lives_in", place("Lisbon"), user_id="bob").relation
    assert mine.object_id != theirs.object_id  # "Lisbon" of each user is their own node
    assert g.neighbours("Lisbon", user_id="bob").facts[0].relation.id == theirs.id
    assert g.neighbours("Alice", user_id="bob").facts == []
    assert g.neighbours(mine.subject_id, user_id="bob").facts == []  # an id of alice's is nothing to bob
    for call in (lambda: g.close(mine.id, user_id="bob"), lambda: g.delete(mine.id, user_id="bob"),
                 lambda: g.restore(mine.id, user_id="bob"), lambda: g.relation(mine.id, user_id="bob"),
                 lambda: g.entity(mine.subject_id, user_id="bob"), lambda: g.history(mine.id, user_id="bob"),
                 lambda: g.merge(theirs.subject_id, mine.subject_id, user_id="bob"),
                 lambda: g.add(EntityRef(id=mine.subject_id), "likes", "tea", user_id="bob")):
        with pytest.raises(NotFoundError):
            call()
    assert [len(g.view(user_id=u).relations) for u in ("alice", "bob")] == [1, 1]
    forgot = gm.forget_user("alice")
    assert forgot.other["graph_relations"] == 1 and forgot.other["graph_entities"] == 2
    assert forgot.other["graph_events"] == 3
    assert g.view(user_id="alice").entities == [] and g.events(user_id="alice") == []
    assert len(g.view(user_id="bob").relations) == 1


def test_bad_input_is_a_typed_error_naming_the_field(gm: Memory) -> None:
    g = gm.graph
    with pytest.raises(ValidationError, match="subject.name"):
        g.add("  ", "likes", "tea", user_id="alice")
    with pytest.raises(ValidationError, match="relation"):
        g.add("Alice", "likes tea very much, and more", "tea", user_id="alice")
    with pytest.raises(ValidationError, match="valid_to"):
        g.add("Alice", "likes", "tea", user_id="alice", valid_from=MARCH, valid_to=D2020)
    with pytest.raises(ValidationError, match="hops"):
        g.neighbours("Alice", user_id="alice", hops=7)
    with pytest.raises(ValidationError, match="user id"):
        g.neighbours("Alice", user_id="bad user!")
    with pytest.raises(ValidationError, match="as_of or since"):
        g.neighbours("Alice", user_id="alice", as_of=MARCH, since=D2020)
    with pytest.raises(ValidationError, match="Triplet"):
        g.add_many(["Alice likes tea"], user_id="alice")  # type: ignore[list-item]
    assert g.events(user_id="alice") == []  # nothing was written by any refused call


def test_graph_is_off_by_default_and_on_with_one_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Memory(tmp_path / "off", embedder="fake") as m:
        with pytest.raises(ConfigurationError, match="REMEM_GRAPH=1"):
            _ = m.graph
        with pytest.raises(ConfigurationError):
            m.search("x", user_id="alice", graph=True)
    monkeypatch.setenv("REMEM_GRAPH", "1")
    with Memory(tmp_path / "on", embedder="fake") as m:
        assert m.graph.add("Alice", "likes", "tea", user_id="alice").created
        # erasure covers the graph even when a later Memory opens with graph memory off
    monkeypatch.delenv("REMEM_GRAPH")
    with Memory(tmp_path / "on", embedder="fake") as m:
        assert m.forget_user("alice").other["graph_relations"] == 1


def test_concurrent_adds_of_one_user_make_one_node_per_name(gm: Memory) -> None:
    g = gm.graph

    def add(i: int) -> str:
        return g.add_many([Triplet(subject=person("Alice"), relation="likes", object=EntityRef(name=f"thing {i}"))],
                          user_id="alice")[0].relation.subject_id

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(add, range(12)))
    assert len(ids) == 1
    assert [e.name for e in g.view(user_id="alice").entities].count("Alice") == 1
    assert len(g.neighbours("Alice", user_id="alice").facts) == 12


def test_export_import_round_trips_the_graph(gm: Memory, tmp_path: Path) -> None:
    g = gm.graph
    gm.add("Alice's sister is Maya", user_id="alice")
    g.add(person("Maya", "Alice's sister"), "sister_of", person("Alice"), user_id="alice", source_ids=["t1"])
    berlin = g.add("Alice", "lives_in", place("Berlin"), user_id="alice", valid_from=D2020).relation
    g.add("Alice", "lives_in", place("Lisbon"), user_id="alice", valid_from=MARCH, source_ids=["t2"])
    wrong = g.add("Alice", "likes", EntityRef(name="durian"), user_id="alice").relation
    g.delete(wrong.id, user_id="alice")
    g.add(person("Bob"), "lives_in", place("Oslo"), user_id="graph-only")  # a user with a graph, no memories
    before = {u: (g.view(user_id=u, deleted=True), g.events(user_id=u)) for u in ("alice", "graph-only")}
    path = tmp_path / "all.jsonl"
    gm.export(path)
    kinds = [line.split('"type": "')[1].split('"')[0] for line in path.read_text().splitlines()]
    assert kinds.count("entity") == 7 and kinds.count("relation") == 5 and "graph_event" in kinds
    with Memory(tmp_path / "copy", embedder="fake", graph=True) as copy:
        counts = copy.import_(path)
        assert counts["graph_entities"] == 7 and counts["graph_relations"] == 5 and counts["graph_skipped"] == 0
        for user, (view, events) in before.items():
            assert copy.graph.view(user_id=user, deleted=True) == view
            assert [e.model_dump(exclude={"id"}) for e in copy.graph.events(user_id=user)] == \
                   [e.model_dump(exclude={"id"}) for e in events]
        assert [f.text for f in copy.graph.neighbours("Alice", user_id="alice", as_of=D2023).facts] == [
            "Maya is sister of Alice", "Alice lives in Berlin (from 2020-01-01 until 2024-03-01)"]
        assert copy.graph.history(berlin.id, user_id="alice")[-1].event.value == "CLOSE"
        again = copy.import_(path)  # the same file twice: everything already there is skipped
        assert again["graph_entities"] == 0 and again["graph_skipped"] == 12
        assert len(copy.graph.events(user_id="alice")) == len(before["alice"][1])


def test_import_refuses_bad_graph_lines_and_writes_nothing(gm: Memory, tmp_path: Path) -> None:
    import json

    g = gm.graph
    rel = g.add(person("Alice"), "likes", EntityRef(name="tea"), user_id="alice").relation
    path = tmp_path / "alice.jsonl"
    gm.export(path, user_id="alice")
    lines = path.read_text().splitlines()
    # the same ids under another user: refused (an id of another user is never overwritten)
    stolen = tmp_path / "stolen.jsonl"
    stolen.write_text("\n".join(line.replace('"user_id": "alice"', '"user_id": "mallory"') for line in lines))
    with pytest.raises(ValidationError, match="belongs to another user"):
        gm.import_(stolen)
    assert g.view(user_id="mallory").entities == []
    # a relation naming an entity its user does not have
    header, *rest = lines
    orphan = tmp_path / "orphan.jsonl"
    only_relation = [line for line in rest if '"type": "relation"' in line]
    orphan.write_text("\n".join([header, *only_relation]).replace(rel.id, "6f1c8d0e-0000-4000-8000-000000000000")
                      .replace('"user_id": "alice"', '"user_id": "eve"'))
    with pytest.raises(ValidationError, match="does not have"):
        gm.import_(orphan)
    # a malformed graph line names its line
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([header, json.dumps({"type": "relation", "relation": {"id": "x"}})]))
    with pytest.raises(ValidationError, match="broken.jsonl:2: invalid relation"):
        gm.import_(broken)
    # a file written before graph memory existed still imports
    old = tmp_path / "old.jsonl"
    old.write_text("\n".join(line for line in lines if '"type": "entity"' not in line
                             and '"type": "relation"' not in line and "graph_event" not in line))
    with Memory(tmp_path / "old-copy", embedder="fake") as plain:
        assert plain.import_(old) == {"memories": 0, "events": 0, "skipped": 0}


async def test_doctor_ignores_graph_rows_and_async_search_fuses_the_graph(gm: Memory) -> None:
    from remem import AsyncMemory

    gm.add("Alice lives in Lisbon", user_id="alice")
    gm.graph.add(person("Alice"), "lives_in", place("Lisbon"), user_id="alice", source_ids=["t1"])
    report = gm.doctor()
    assert report.ok and report.memories_checked == 1  # relations are not memories of the vector store
    assert [r.text for r in gm.list(user_id="alice").items] == ["Alice lives in Lisbon"]  # no entity leaks in
    hits = await AsyncMemory(sync=gm).search("Alice", user_id="alice", graph=True)
    assert sorted((h.record.text, "graph" in h.signals) for h in hits) == [
        ("Alice lives in Lisbon", False), ("Alice lives in Lisbon", True)]
