"""The time rules of graph memory (review 2, finding 5): symmetric relations are one edge whichever way they are
told and end by either endpoint; older news never makes two objects of a single-valued relation hold at once,
also before an ended relation; merge reconciles what the joined entity holds and makes no self-relation. On
SQLite and on a real Postgres 16."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remem import Memory
from remem.graph import EntityRef, Relation


def day(year: int, month: int = 1, d: int = 1) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def gm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with Memory(tmp_path / "g", embedder="fake", database_url=url, graph=True) as m:
        yield m


def person(name: str) -> EntityRef:
    return EntityRef(name=name, type="person")


def place(name: str) -> EntityRef:
    return EntityRef(name=name, type="place")


def held(memory: Memory, who: str, relation: str, when: datetime) -> list[str]:
    """The objects (or other ends) of ``who``'s ``relation`` relations that held at ``when``."""
    found = memory.graph.neighbours(who, user_id="alice", as_of=when).facts
    return sorted((f.object.name if f.subject.name == who else f.subject.name) for f in found
                  if f.relation.relation == relation)


def span(r: Relation) -> tuple[datetime | None, datetime | None]:
    return r.valid_from, r.valid_to


def test_a_symmetric_relation_is_one_edge_and_ends_by_either_endpoint(gm: Memory) -> None:
    g = gm.graph
    first = g.add(person("Alice"), "married_to", person("Bob"), user_id="alice", valid_from=day(2010),
                  source_ids=["t1"]).relation
    again = g.add(person("Bob"), "married_to", person("Alice"), user_id="alice", source_ids=["t2"])
    assert not again.created and again.relation.id == first.id and again.relation.source_ids == ["t1", "t2"]
    assert len(g.view(user_id="alice").relations) == 1  # before: two edges, Bob->Alice and Alice->Bob
    # Bob (the object of the known edge) marries Carol: the Alice-Bob marriage ends
    second = g.add(person("Bob"), "married_to", person("Carol"), user_id="alice", valid_from=day(2020))
    assert [(r.id, span(r)) for r in second.closed] == [(first.id, (day(2010), day(2020)))]
    assert held(gm, "Bob", "married_to", day(2015)) == ["Alice"]
    assert held(gm, "Bob", "married_to", day(2021)) == ["Carol"]
    # Carol (the object of Bob's edge) marries Dan, said on a day without a start date: it ends Bob-Carol then
    third = g.add(person("Dan"), "married_to", person("Carol"), user_id="alice", observed_at=day(2023))
    assert [(r.id, span(r)) for r in third.closed] == [(second.relation.id, (day(2020), day(2023)))]
    assert span(third.relation) == (day(2023), None)
    # a multi-valued symmetric relation is one edge too, and ends nothing
    friends = g.add(person("Alice"), "friend_of", person("Carol"), user_id="alice").relation
    assert g.add(person("Carol"), "friend_of", person("Alice"), user_id="alice").relation.id == friends.id
    assert g.add(person("Carol"), "friend_of", person("Erin"), user_id="alice").closed == []


def test_older_news_never_makes_two_residences_hold_at_once(gm: Memory) -> None:
    g = gm.graph
    berlin = g.add(person("Alice"), "lives_in", place("Berlin"), user_id="alice", valid_from=day(2019)).relation
    lisbon = g.add("Alice", "lives_in", place("Lisbon"), user_id="alice", valid_from=day(2024)).relation
    # learned last: "Alice lived in Paris since 2018" — it ended when Berlin (already ended) began
    paris = g.add("Alice", "lives_in", place("Paris"), user_id="alice", valid_from=day(2018))
    assert paris.closed == [] and span(paris.relation) == (day(2018), day(2019))  # before: until 2024
    for year, where in ((2018, ["Paris"]), (2020, ["Berlin"]), (2024, ["Lisbon"])):  # before: 2020 had two
        assert held(gm, "Alice", "lives_in", day(year, 6)) == where, year
    # news that starts inside a known ended span ends that span there (the two cannot both hold)
    munich = g.add("Alice", "lives_in", place("Munich"), user_id="alice", valid_from=day(2021),
                   valid_to=day(2022))
    [(moved, event)] = [(r, e) for r in munich.closed for e in munich.events if e.target_id == r.id]
    assert (moved.id, span(moved), event.event.value) == (berlin.id, (day(2019), day(2021)), "UPDATE")
    assert event.reason == "ended earlier: contradicted by lives_in Munich"
    assert held(gm, "Alice", "lives_in", day(2021, 6)) == ["Munich"]
    assert g.relation(lisbon.id, user_id="alice").is_open
    # a relation told again while it held is the same relation (a retried pipeline job), not a twin
    again = g.add("Alice", "lives_in", "Berlin", user_id="alice", observed_at=day(2020), source_ids=["t7"])
    assert not again.created and again.relation.id == berlin.id and again.relation.source_ids == ["t7"]
    # the same object after a gap is a new relation, and ends the open one
    back = g.add("Alice", "lives_in", "Berlin", user_id="alice", valid_from=day(2025))
    assert back.created and [r.id for r in back.closed] == [lisbon.id]
    every = {(r.valid_from, r.valid_to) for r in g.view(user_id="alice").relations}
    for start, end in every:  # at no instant do two residences hold
        assert sum(1 for s, e in every if (s is None or s <= start) and (e is None or start < e)) == 1, every


def test_merge_reconciles_single_valued_relations_and_makes_no_self_relation(gm: Memory) -> None:
    g = gm.graph
    john = g.add(person("John"), "lives_in", place("Berlin"), user_id="alice", valid_from=day(2019)).relation
    jon = g.add(person("Jon"), "lives_in", place("Lisbon"), user_id="alice", valid_from=day(2023)).relation
    sibling = g.add(person("John"), "sister_of", person("Jon"), user_id="alice").relation
    tea = [g.add(who, "likes", EntityRef(name="tea"), user_id="alice", source_ids=[s]).relation
           for who, s in (("John", "t1"), ("Jon", "t2"))]
    kept = g.merge(john.subject_id, jon.subject_id, user_id="alice")
    assert kept.aliases == ["Jon"]
    live = g.view(user_id="alice").relations
    assert [r for r in live if r.subject_id == r.object_id] == []  # before: "John sister_of John"
    assert g.relation(sibling.id, user_id="alice").deleted_at is not None
    # two open residences become one timeline: Berlin ended when Lisbon began
    assert span(g.relation(john.id, user_id="alice")) == (day(2019), day(2023))
    assert g.relation(jon.id, user_id="alice").is_open
    assert held(gm, "John", "lives_in", day(2024)) == ["Lisbon"] and held(gm, "John", "lives_in", day(2020)) == [
        "Berlin"]
    # the duplicate "likes tea" folds into the older one, with both sources
    likes = [r for r in live if r.relation == "likes"]
    assert [(r.id, r.source_ids) for r in likes] == [(tea[0].id, ["t1", "t2"])]
    assert g.relation(tea[1].id, user_id="alice").deleted_at is not None
    reasons = [(e.event.value, e.reason) for e in g.history(sibling.id, user_id="alice")]
    assert reasons[-1] == ("DELETE", "a relation of an entity with itself once Jon was merged into it")
    assert [e.event.value for e in g.history(john.id, user_id="alice")][-1] == "CLOSE"
