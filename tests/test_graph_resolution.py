"""Entity resolution and how entities are shown (review 2, findings 1, 2 and 9): names that differ by a number or a
letter are never merged by embedding similarity (with the packaged MiniLM, whose cosines made them merge), a
bare mention of a name two hinted entities share is a new node, every read tells namesakes apart, and a month
in a time expression is not an entity."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client

from remem import Memory
from remem.cli import main
from remem.graph import EntityRef, Thresholds, Triplet
from remem.graph.names import identifiers
from remem.graph.resolve import Candidate, Mention
from remem.server.mcp import build_mcp_server, fixed_user

#: Names that differ only by a number, a letter, a code or a Roman numeral, with their cosine under the packaged
#: local embedder (all-MiniLM-L6-v2 int8): the first ones are at or above the "same" threshold (0.90), so they
#: merged before identifiers were compared; the others are "ambiguous" (0.75-0.90), which the LM was asked about.
PAIRS = [("Room 101", "Room 102"), ("Chapter 3", "Chapter 4"), ("Gate A1", "Gate A2"),
         ("2023 Berlin Marathon", "2024 Berlin Marathon"), ("jam2", "jam3"), ("Apollo 11", "Apollo 13"),
         ("P7 Person", "P70 Person"), ("T2-7 thing", "T2-8 thing"), ("Gate A", "Gate B"), ("iPhone 14", "iPhone 15"),
         ("Windows 10", "Windows 11"), ("Flight LH400", "Flight LH401"), ("Rocky II", "Rocky III"),
         ("Henry VII", "Henry VIII")]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "local", embedder="local", graph=True) as m:
        yield m


@pytest.fixture
def gm(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "g", embedder="fake", graph=True) as m:
        yield m


def test_identifier_tokens() -> None:
    assert identifiers("Room 101") == {"101"} and identifiers("Gate A1") == {"a1"}
    assert identifiers("T2-7 thing") == {"t2", "7"} and identifiers("jam2") == {"jam2"}
    assert identifiers("Gate A") == {"a"} and identifiers("Rocky II") == {"ii"} and identifiers("Henry VIII") == {"viii"}
    assert identifiers("New York City") == set() and identifiers("CIVIL war") == set()  # not a Roman numeral
    assert identifiers("my room 101") == {"101"}  # the name as resolution sees it ("room 101")


def test_names_that_differ_by_a_number_or_letter_never_merge(local: Memory) -> None:
    g = local.graph
    vectors = local.embedder.embed([n for pair in PAIRS for n in pair])
    cosines = [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(PAIRS))]
    assert all(c >= Thresholds().same for c in cosines[:6]), cosines  # these merged before the fix
    assert all(c >= Thresholds().maybe for c in cosines), cosines  # and the LM was asked about all of them
    asked: list[tuple[str, list[str]]] = []

    def confirm(mention: Mention, candidates: Sequence[Candidate]) -> int | None:
        asked.append((mention.name, [c.entity.name for c in candidates]))
        return 0  # an LM that always says "the same": it must never be asked about these

    for a, b in PAIRS:
        first, second = (g.add_many([Triplet(subject=EntityRef(name="Alice", type="person"), relation="visited",
                                             object=EntityRef(name=n, type="place"))], user_id="alice",
                                    confirm=confirm)[0] for n in (a, b))
        assert first.relation.object_id != second.relation.object_id, (a, b)
        assert [e.name for e in second.entities] == ["Alice", b]
    assert asked == []
    assert len(g.view(user_id="alice").entities) == 1 + 2 * len(PAIRS)
    # the rule only bites on identifiers: spelling variants still join, by name or by embedding
    nyc = g.add("Alice", "visited", EntityRef(name="New York", type="place"), user_id="alice").relation.object_id
    assert g.add("Alice", "likes", EntityRef(name="New York City", type="place"),  # cosine 0.95
                 user_id="alice").relation.object_id == nyc
    room = g.add_many([Triplet(subject=EntityRef(name="Alice"), relation="booked", object=EntityRef(name="room 101!"))],
                      user_id="alice")[0]
    assert room.entities[1].name == "Room 101"  # the same name key: the known entity
    # a free-text lookup is not answered with another room's facts
    assert [f.text for f in g.neighbours("where is room 103?", user_id="alice").facts] == []
    assert {f.object.name for f in g.neighbours("Room 101", user_id="alice").facts} == {"Room 101"}


def test_1640_triplets_keep_every_numbered_name_apart(local: Memory) -> None:
    """The tester's scale run: "P{i} Person likes T{i}-{j} thing", 40 people x 41 things, one batch per person.
    Before, numbered names merged and "P7 Person likes T2-7 thing" was reported though it was never added."""
    g = local.graph
    for i in range(40):
        g.add_many([Triplet(subject=EntityRef(name=f"P{i} Person", type="person"), relation="likes",
                            object=EntityRef(name=f"T{i}-{j} thing", type="thing")) for j in range(41)],
                   user_id="scale")
    view = g.view(user_id="scale")
    assert (len(view.entities), len(view.relations)) == (40 + 40 * 41, 1640)
    for i in range(40):
        facts = g.neighbours(f"P{i} Person", user_id="scale", limit=1000).facts
        assert sorted(f.text for f in facts) == sorted(f"P{i} Person likes T{i}-{j} thing" for j in range(41)), i
    assert not any("T2-7" in f.text for f in g.neighbours("P7 Person", user_id="scale", limit=1000).facts)


def test_a_bare_name_two_hinted_namesakes_share_is_a_new_node_and_reads_tell_them_apart(gm: Memory) -> None:
    g = gm.graph
    sister = g.add({"name": "Maya", "type": "person", "hint": "Alice's sister"}, "sister_of",
                   {"name": "Alice", "type": "person"}, user_id="alice").relation.subject_id
    colleague = g.add({"name": "Maya", "type": "person", "hint": "Alice's colleague at Acme"}, "works_at",
                      {"name": "Acme", "type": "organisation"}, user_id="alice").relation.subject_id
    bare = g.add({"name": "Maya", "type": "person"}, "likes", "chess", user_id="alice")
    assert bare.created and bare.relation.subject_id not in {sister, colleague}  # before: the colleague (newest)
    again = g.add("maya", "likes", "jazz", user_id="alice")  # later bare mentions join the hint-less Maya
    assert again.relation.subject_id == bare.relation.subject_id
    hinted = g.add({"name": "Maya", "hint": "my sister"}, "lives_in", {"name": "Lisbon", "type": "place"},
                   user_id="alice")
    assert hinted.relation.subject_id == sister
    tag = "#" + bare.relation.subject_id[:8]
    found = g.neighbours("Maya", user_id="alice")
    assert sorted(found.text().splitlines()) == [
        "- Maya (#" + tag[1:] + ") likes chess", "- Maya (#" + tag[1:] + ") likes jazz",
        "- Maya (Alice's colleague at Acme) works at Acme", "- Maya (Alice's sister) is sister of Alice",
        "- Maya (Alice's sister) lives in Lisbon"]
    assert sorted(found.label(e) for e in found.matched) == [
        "Maya (#" + bare.relation.subject_id[:8] + ")", "Maya (Alice's colleague at Acme)", "Maya (Alice's sister)"]
    assert g.neighbours("Acme", user_id="alice").text() == "- Maya (Alice's colleague at Acme) works at Acme"
    assert g.neighbours("Alice", user_id="alice").labels[sister] == "Maya (Alice's sister)"
    assert g.describe(hinted.relation, user_id="alice") == "Maya (Alice's sister) lives in Lisbon"
    # a person and a place that share a name are told apart by their type
    g.add({"name": "Paris", "type": "person"}, "friend_of", "Alice", user_id="alice")
    g.add("Alice", "visited", {"name": "Paris", "type": "place"}, user_id="alice")
    assert sorted(f.text for f in g.neighbours("Paris", user_id="alice").facts) == [
        "Alice visited Paris (place)", "Paris (person) is friend of Alice"]
    # one Maya only: no disambiguator
    assert g.neighbours("Bob", user_id="alice").facts == []
    g.add({"name": "Maya", "type": "person"}, "likes", "tea", user_id="bob")
    assert g.neighbours("Maya", user_id="bob").text() == "- Maya likes tea"


def test_cli_and_mcp_show_namesakes_with_their_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")
    home = tmp_path / "cli"
    with Memory(home, graph=True) as memory:
        memory.graph.add({"name": "Maya", "type": "person", "hint": "Alice's sister"}, "lives_in",
                         {"name": "Lisbon", "type": "place"}, user_id="alice")
        memory.graph.add({"name": "Maya", "type": "person", "hint": "Alice's colleague"}, "lives_in",
                         {"name": "Oslo", "type": "place"}, user_id="alice")

        async def mcp() -> dict[str, object]:
            async with Client(build_mcp_server(memory, fixed_user("alice"))) as client:
                result = await client.call_tool("search_graph", {"entity_or_text": "Maya"})
                assert not result.is_error and result.structured_content is not None
                data: dict[str, object] = result.structured_content.get("result", result.structured_content)
                for hops in ("2", True, 2.0):  # a JSON integer only, as on REST
                    bad = await client.call_tool("search_graph", {"entity_or_text": "Maya", "hops": hops})
                    assert bad.is_error, hops
                return data

        data = asyncio.run(mcp())
    assert sorted(data["matched"]) == ["Maya (Alice's colleague)", "Maya (Alice's sister)"]  # type: ignore[arg-type]
    assert sorted(f["text"] for f in data["facts"]) == [  # type: ignore[attr-defined]
        "Maya (Alice's colleague) lives in Oslo", "Maya (Alice's sister) lives in Lisbon"]
    for args in (["Maya"], []):
        with pytest.raises(SystemExit) as exc:
            main(["graph", "--home", str(home), "-u", "alice", *args])
        out = capsys.readouterr().out
        assert exc.value.code in (0, None)
        assert "Maya (Alice's sister) lives in Lisbon" in out and "Maya (Alice's colleague) lives in Oslo" in out


def test_a_month_in_a_time_expression_is_not_an_entity(gm: Memory) -> None:
    g = gm.graph
    g.add({"name": "May", "type": "person"}, "lives_in", {"name": "Oslo", "type": "place"}, user_id="alice")
    g.add({"name": "Alice", "type": "person"}, "lives_in", {"name": "Lisbon", "type": "place"}, user_id="alice",
          valid_from=datetime(2024, 1, 1, tzinfo=UTC))
    assert [e.name for e in g.neighbours("where did Alice live in May 2024?", user_id="alice").matched] == ["Alice"]
    assert [e.name for e in g.neighbours("what happened on 8 May?", user_id="alice").matched] == []
    assert [e.name for e in g.neighbours("where does May live?", user_id="alice").matched] == ["May"]
    assert [e.name for e in g.neighbours("May", user_id="alice").matched] == ["May"]
    hits = gm.search("where did Alice live in May 2024?", user_id="alice", graph=True)
    assert [h.record.text for h in hits] == ["Alice lives in Lisbon (since 2024-01-01)"]


def test_graph_hits_follow_the_kinds_and_categories_filters(gm: Memory) -> None:
    gm.add(["Alice's sister is Maya"], user_id="alice", categories=["family"])  # an episode
    gm.graph.add({"name": "Maya", "type": "person"}, "sister_of", {"name": "Alice", "type": "person"},
                 user_id="alice", source_ids=["t1"])

    def search(**filters: object) -> list[tuple[str, list[str]]]:
        hits = gm.search("Alice's sister", user_id="alice", graph=True, **filters)  # type: ignore[arg-type]
        return sorted((h.record.kind, h.record.categories) for h in hits)

    graph_hit = ("fact", ["graph"])
    assert graph_hit in search()
    assert search(kinds=["episode"]) == [("episode", ["family"])]  # before: the graph fact too
    assert search(kinds=["fact"]) == [graph_hit]
    assert search(categories=["family"]) == [("episode", ["family"])]  # before: the graph fact too
    assert search(categories=["family", "graph"]) == [("episode", ["family"]), graph_hit]
    assert search(categories=["graph"]) == [graph_hit]


def test_graph_only_users_are_listed_and_exported(gm: Memory, tmp_path: Path) -> None:
    gm.add("I like tea", user_id="memories-only")
    gm.graph.add("Bob", "lives_in", "Oslo", user_id="graph-only")
    assert gm.users() == ["graph-only", "memories-only"]  # before: graph-only was missing
    assert gm.stats().users == 2
    path = tmp_path / "all.jsonl"
    gm.export(path)
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert kinds.count("entity") == 2 and kinds.count("relation") == 1
