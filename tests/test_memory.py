"""The Memory facade on the real edge store and SQLite: isolation, update, soft delete, dedup, erasure."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remem import EventType, Memory, Message, NotFoundError, ValidationError
from remem.stores import MemoryFilter

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def everything(m: Memory) -> tuple[list[tuple[str, str, int, bool]], int]:
    """Every record of every user (live and deleted) and the number of history events."""
    records = []
    for uid in ("alice", "bob"):
        for r in m.store.scroll(MemoryFilter(user_id=uid, deleted=None), offset=0, limit=1000):
            records.append((r.id, r.text, r.version, r.is_deleted))
    return sorted(records), m.log.count()


@pytest.fixture
def two_users(fake_memory: Memory) -> tuple[Memory, list[str], list[str]]:
    m = fake_memory
    a = m.add(["I love green tea", "I live in Lisbon", "My cat is called Tofu"], user_id="alice")
    b = m.add(["I love green tea", "I live in Oslo"], user_id="bob")
    return m, [e.memory_id for e in a.added], [e.memory_id for e in b.added]  # type: ignore[misc]


# -- isolation ---------------------------------------------------------------------------------------------
def test_reads_never_cross_users(two_users: tuple[Memory, list[str], list[str]]) -> None:
    m, alice, bob = two_users
    assert {h.record.user_id for h in m.search("green tea Oslo Lisbon", user_id="alice", limit=20)} == {"alice"}
    assert {h.record.id for h in m.search("Oslo", user_id="alice", mode="bm25")} == set()
    assert {r.id for r in m.list(user_id="alice").items} == set(alice)
    assert {r.id for r in m.list(user_id="bob").items} == set(bob)
    assert m.list(user_id="carol").total == 0
    assert m.search("tea", user_id="carol") == []


@pytest.mark.parametrize("op", ["get", "update", "delete", "restore", "history"])
def test_other_users_id_is_not_found_and_untouched(two_users: tuple[Memory, list[str], list[str]], op: str) -> None:
    m, _, bob = two_users
    if op == "restore":
        m.delete(bob[0], user_id="bob")
    before = everything(m)
    call = {
        "get": lambda: m.get(bob[0], user_id="alice", include_deleted=True),
        "update": lambda: m.update(bob[0], "hijacked", user_id="alice"),
        "delete": lambda: m.delete(bob[0], user_id="alice"),
        "restore": lambda: m.restore(bob[0], user_id="alice"),
        "history": lambda: m.history(bob[0], user_id="alice"),
    }[op]
    with pytest.raises(NotFoundError) as info:
        call()
    assert info.value.context["memory_id"] == bob[0]
    assert everything(m) == before


def test_forget_user_spares_other_users(two_users: tuple[Memory, list[str], list[str]]) -> None:
    m, _, bob = two_users
    m.forget_user("alice")
    assert {r.id for r in m.list(user_id="bob").items} == set(bob)
    assert len(m.history(bob[0], user_id="bob")) == 1
    assert m.search("green tea", user_id="bob")[0].record.id == bob[0]


# -- update ------------------------------------------------------------------------------------------------
def test_update_keeps_id_bumps_version_and_records_old_text(fake_memory: Memory) -> None:
    m = fake_memory
    (added,) = m.add("I drink coffee every morning", user_id="alice", categories=["Food"]).added
    mid = added.memory_id
    assert mid is not None
    new = m.update(mid, "I drink green tea every morning", user_id="alice", metadata={"src": "chat"})
    assert new.id == mid and new.version == 2 and new.categories == ["food"] and new.metadata == {"src": "chat"}
    assert m.get(mid, user_id="alice") == new
    assert m.list(user_id="alice").total == 1
    # The new text is what search finds: it was re-embedded and re-indexed for BM25.
    assert m.search("green tea", user_id="alice", mode="bm25")[0].record.id == mid
    assert m.search("coffee", user_id="alice", mode="bm25") == []
    events = m.history(mid, user_id="alice")
    assert [e.event for e in events] == [EventType.ADD, EventType.UPDATE]
    assert events[1].old_text == "I drink coffee every morning"
    assert events[1].new_text == "I drink green tea every morning"
    assert events[1].snapshot == new
    m.update(mid, user_id="alice", categories=["drinks"])  # payload-only change: keeps the vector
    assert m.get(mid, user_id="alice").version == 3
    assert m.search("green tea", user_id="alice", mode="dense")[0].record.id == mid


# -- soft delete and restore -------------------------------------------------------------------------------
def test_delete_is_soft_and_restore_brings_it_back(two_users: tuple[Memory, list[str], list[str]]) -> None:
    m, alice, _ = two_users
    gone = m.delete(alice[0], user_id="alice", reason="user asked")
    assert gone.is_deleted
    assert alice[0] not in {h.record.id for h in m.search("green tea", user_id="alice", limit=20)}
    assert alice[0] not in {r.id for r in m.list(user_id="alice").items}
    assert [r.id for r in m.list(user_id="alice", deleted=True).items] == [alice[0]]
    assert m.list(user_id="alice", deleted=None).total == 3
    assert m.get(alice[0], user_id="alice", include_deleted=True).is_deleted
    with pytest.raises(NotFoundError):
        m.get(alice[0], user_id="alice")
    with pytest.raises(NotFoundError):
        m.delete(alice[0], user_id="alice")  # already deleted
    back = m.restore(alice[0], user_id="alice")
    assert not back.is_deleted
    assert m.search("green tea", user_id="alice")[0].record.id == alice[0]
    with pytest.raises(NotFoundError):
        m.restore(alice[0], user_id="alice")  # not deleted any more
    events = m.history(alice[0], user_id="alice")
    assert [e.event for e in events] == [EventType.ADD, EventType.DELETE, EventType.RESTORE]
    assert events[1].reason == "user asked" and events[1].old_text == "I love green tea"


def test_restore_of_a_duplicate_of_a_live_memory_is_refused(fake_memory: Memory) -> None:
    m = fake_memory
    (first,) = m.add("I love green tea", user_id="alice").added
    assert first.memory_id is not None
    m.delete(first.memory_id, user_id="alice")
    (second,) = m.add("i love GREEN   tea", user_id="alice").added  # not a duplicate: the first is deleted
    before = everything(m)
    with pytest.raises(ValidationError) as info:
        m.restore(first.memory_id, user_id="alice")
    assert info.value.context["duplicate_of"] == second.memory_id
    assert everything(m) == before


# -- dedup -------------------------------------------------------------------------------------------------
def test_exact_duplicates_are_noops_naming_the_existing_memory(fake_memory: Memory) -> None:
    m = fake_memory
    (first,) = m.add("I love green tea", user_id="alice").added
    again = m.add(["  i LOVE green\ttea ", "Something new"], user_id="alice")
    assert [e.event for e in again.events] == [EventType.NOOP, EventType.ADD]
    assert again.events[0].memory_id == first.memory_id
    assert m.list(user_id="alice").total == 2
    # The same text for another user is not a duplicate.
    assert [e.event for e in m.add("I love green tea", user_id="bob").events] == [EventType.ADD]


def test_duplicates_within_one_batch(fake_memory: Memory) -> None:
    m = fake_memory
    result = m.add(["I like tea", "I play football", "i LIKE   tea", "I play football."], user_id="alice")
    kinds = [e.event for e in result.events]
    assert kinds == [EventType.ADD, EventType.ADD, EventType.NOOP, EventType.ADD]  # events follow input order
    assert result.events[2].memory_id == result.events[0].memory_id
    assert m.list(user_id="alice").total == 3
    assert m.log.count("alice") == 3


# -- add: messages, metadata, listing ------------------------------------------------------------------------
def test_messages_become_episodes_with_speaker_time_and_source(fake_memory: Memory) -> None:
    m = fake_memory
    turns = [
        Message(role="user", name="Caroline", content="I went to a support group yesterday", id="D1:1",
                timestamp=datetime(2023, 5, 8, 13, 56)),
        {"role": "assistant", "content": "How did it go?", "id": "D1:2", "timestamp": "2023-05-08T13:57:00Z"},
    ]
    result = m.add(turns, user_id="caroline", session_id="s1", metadata={"conv": 26})
    assert len(result.added) == 2
    records = m.list(user_id="caroline", order="asc").items
    assert [r.kind for r in records] == ["episode", "episode"]
    assert [r.source_ids for r in records] == [["D1:1"], ["D1:2"]]
    assert records[0].speaker == "Caroline" and records[1].role == "assistant"
    assert records[0].observed_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert records[0].session_id == "s1" and records[0].metadata == {"conv": 26}
    fact = m.add("Caroline is a counsellor", user_id="caroline").added[0]
    assert m.get(fact.memory_id or "", user_id="caroline").kind == "fact"
    assert m.list(user_id="caroline", kinds=["fact"]).total == 1


def test_list_pages_and_filters(fake_memory: Memory) -> None:
    m = fake_memory
    for i in range(7):
        m.add(Message(content=f"event number {i}", timestamp=T0 + timedelta(days=i)), user_id="alice",
              categories=["even"] if i % 2 == 0 else ["odd"])
    page = m.list(user_id="alice", limit=3)
    assert [r.text for r in page.items] == ["event number 6", "event number 5", "event number 4"]
    assert page.total == 7 and page.next_offset == 3
    texts = []
    offset: int | None = 0
    while offset is not None:
        page = m.list(user_id="alice", limit=3, offset=offset, order="asc")
        texts += [r.text for r in page.items]
        offset = page.next_offset
    assert texts == [f"event number {i}" for i in range(7)]
    assert m.list(user_id="alice", categories=["odd"]).total == 3
    window = m.list(user_id="alice", since=T0 + timedelta(days=2), until=T0 + timedelta(days=3))
    assert [r.text for r in window.items] == ["event number 3", "event number 2"]


def test_search_filters_and_threshold(fake_memory: Memory) -> None:
    m = fake_memory
    m.add(Message(content="Trip to Rome with my sister", timestamp=T0), user_id="alice", categories=["travel"])
    m.add(Message(content="Trip to Paris for work", timestamp=T0 + timedelta(days=30)), user_id="alice",
          categories=["work"])
    assert [h.record.text for h in m.search("trip", user_id="alice", categories=["work"])] == [
        "Trip to Paris for work"
    ]
    assert [h.record.text for h in m.search("trip", user_id="alice", until=T0 + timedelta(days=1))] == [
        "Trip to Rome with my sister"
    ]
    hits = m.search("trip to Rome", user_id="alice")
    assert hits[0].record.text == "Trip to Rome with my sister"
    assert set(hits[0].signals) == {"dense", "bm25"} and hits[0].ranks == {"dense": 1, "bm25": 1}
    strict = m.search("trip to Rome", user_id="alice", threshold=0.99)
    assert strict == []
    assert all(h.signals["dense"] >= 0.3 for h in m.search("trip to Rome", user_id="alice", threshold=0.3))


# -- forget_user -------------------------------------------------------------------------------------------
def test_forget_user_purges_store_history_and_sqlite_bytes(tmp_path: Path) -> None:
    secret = "Zanzibar-secret-4711 is my bank PIN"
    home = tmp_path / "home"

    def segment_bytes() -> bytes:  # every file of the edge store: segments (LZ4-compressed payloads) and WAL
        return b"".join(p.read_bytes() for p in (home / "edge").rglob("*") if p.is_file())

    with Memory(home, embedder="fake") as m:
        ids = [e.memory_id for e in m.add([secret, "another alice memory"], user_id="alice").added]
        assert ids[0] is not None and ids[1] is not None
        m.update(ids[1], "another alice memory, changed", user_id="alice")
        m.delete(ids[0], user_id="alice")  # a tombstone must be purged too
        m.add("Quokka-7319 is what bob keeps", user_id="bob")
        assert b"Zanzibar-secret-4711" in segment_bytes()  # the byte checks below can see text that is there
        result = m.forget_user("alice")
        assert (result.user_id, result.memories, result.history_events) == ("alice", 2, 4)
        assert m.store.count(MemoryFilter(user_id="alice", deleted=None)) == 0
        assert m.log.count("alice") == 0
        assert "alice" not in m.users()
        assert m.list(user_id="bob").total == 1 and m.log.count("bob") == 1
        with pytest.raises(NotFoundError):
            m.history(ids[0], user_id="alice")
        again = m.forget_user("alice")
        assert (again.memories, again.history_events) == (0, 0)
        db = home / "history.sqlite3"
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        raw = b"".join(p.read_bytes() for p in db.parent.glob("history.sqlite3*"))
        assert b"Zanzibar-secret-4711" not in raw
        assert b"Quokka-7319" in raw
        # The edge store was rewritten without alice's points: gone from its segments and its write-ahead log.
        assert b"Zanzibar-secret-4711" not in segment_bytes()
        assert b"Quokka-7319" in segment_bytes()


def test_turns_of_a_session_are_numbered_across_calls_and_expand_to_neighbours(fake_memory: Memory) -> None:
    first = fake_memory.add([Message(content="we adopted a kitten"), Message(content="her name is Miso")],
                            user_id="alice", session_id="s1")
    second = fake_memory.add([Message(content="she sleeps all day")], user_id="alice", session_id="s1")
    other = fake_memory.add([Message(content="unrelated chat about trains")], user_id="alice", session_id="s2")
    ids = [e.memory_id for e in first.events + second.events + other.events]
    seqs = [fake_memory.get(i, user_id="alice").seq for i in ids if i is not None]
    assert seqs == [0, 1, 2, 0]
    hit = fake_memory.search("Miso", user_id="alice", limit=1)[0]
    assert hit.record.text == "her name is Miso"
    assert {r.text for r in hit.context} == {"we adopted a kitten", "she sleeps all day"}


def test_update_to_the_text_of_another_live_memory_is_refused(fake_memory: Memory) -> None:
    """Exact duplicates are never live twice — also through update — so a deleted memory stays restorable."""
    m = fake_memory
    a, b = (e.memory_id or "" for e in m.add(["Alice likes tea", "Bob likes chess"], user_id="u").events)
    with pytest.raises(ValidationError, match="already says this") as info:
        m.update(b, "alice likes TEA", user_id="u")
    assert info.value.context["duplicate_of"] == a
    assert m.get(b, user_id="u").text == "Bob likes chess" and m.get(b, user_id="u").version == 1
    m.delete(a, user_id="u")
    assert m.update(b, "Alice likes tea", user_id="u").version == 2  # allowed: the other copy is deleted
    with pytest.raises(ValidationError, match="same text"):
        m.restore(a, user_id="u")  # ... and now restoring it would make two live copies: refused, named
