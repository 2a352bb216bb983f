"""Long memories (remem.chunking): stored whole, indexed in linked chunks, every part findable, invisible to reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from remem import EventType, Memory, ValidationError
from remem.chunking import CHUNK_CHARS, chunk_ids, split
from remem.stores import MemoryFilter

SECTIONS = [
    "The quarterly report covers revenue, hiring and the new office in Lisbon. " * 6,
    "Section two is about the kitchen renovation: the plumber replaced the copper pipes with PEX. " * 6,
    "Section three lists Alice's allergy to peanuts and the epinephrine pen she carries everywhere. " * 6,
    "The final section describes the telescope Bob bought to photograph the rings of Saturn at night. " * 6,
]
DOCUMENT = "\n\n".join(s.strip() for s in SECTIONS)


def test_split_covers_the_text_in_overlapping_bounded_parts() -> None:
    parts = split(DOCUMENT)
    assert len(parts) >= 3 and all(len(p) <= CHUNK_CHARS for p in parts)
    words = set(DOCUMENT.split())
    assert set(" ".join(parts).split()) == words  # nothing lost at a cut
    assert split("short text") == ["short text"]


@pytest.mark.parametrize("memory_fixture", ["local_memory"])
def test_every_part_of_a_long_message_is_found_and_returns_the_message(memory_fixture: str,
                                                                       request: pytest.FixtureRequest) -> None:
    m: Memory = request.getfixturevalue(memory_fixture)
    (mid,) = [e.memory_id for e in m.add(DOCUMENT, user_id="alice").events]
    m.add(["Alice likes green tea", "Bob plays chess on Sundays"], user_id="alice")
    for query, word in (("copper pipes replaced by the plumber", "copper"),
                        ("epinephrine pen peanut allergy", "epinephrine"), ("telescope for Saturn's rings", "telescope")):
        for mode in ("hybrid", "dense", "bm25"):
            hits = m.search(query, user_id="alice", limit=3, mode=mode)  # type: ignore[arg-type]
            assert hits[0].record.id == mid, (query, mode)
            assert hits[0].record.text == DOCUMENT  # the whole message
            assert hits[0].chunk is not None and hits[0].chunk.parent_id == mid
            assert word in hits[0].chunk.text  # the part that matched
    # reads see one memory, never its chunks
    page = m.list(user_id="alice")
    assert page.total == 3 and "chunk" not in {r.kind for r in page.items}
    assert m.stats().memories == 3
    assert m.doctor().ok


def test_chunks_follow_update_delete_and_erasure(fake_memory: Memory) -> None:
    m = fake_memory
    (mid,) = [e.memory_id or "" for e in m.add(DOCUMENT, user_id="alice").events]
    everything = MemoryFilter(user_id="alice", deleted=None, chunks=True)
    n = len(chunk_ids(m.get(mid, user_id="alice")))
    assert m.store.count(everything) == 1 + n
    m.update(mid, "now a short text", user_id="alice")
    assert m.store.count(everything) == 1  # stale chunks removed
    m.update(mid, DOCUMENT + "\n\nAn appendix about the garden.", user_id="alice")
    assert m.store.count(everything) == 1 + len(split(DOCUMENT + "\n\nAn appendix about the garden."))
    m.delete(mid, user_id="alice")
    assert m.search("plumber copper pipes", user_id="alice", mode="bm25") == []  # a deleted memory's chunks drop out
    m.restore(mid, user_id="alice")
    assert m.search("plumber copper pipes", user_id="alice", mode="bm25")[0].record.id == mid
    assert m.search("plumber copper pipes", user_id="bob", mode="bm25") == []  # isolation holds for chunks
    m.forget_user("alice")
    assert m.store.count(MemoryFilter(user_id=None, all_users=True, deleted=None, chunks=True)) == 0


def test_a_16787_character_message_is_stored_and_an_oversized_one_writes_nothing(tmp_path: Path) -> None:
    """LongMemEval_S holds a 16,787-character turn, which the old 16,000 limit refused (aborting the run)."""
    long_turn = ("I pasted my whole config file here. " * 500)[:16_787]
    with Memory(tmp_path / "m", embedder="fake") as m:
        events = m.add([{"content": "hi", "id": "a"}, {"content": long_turn, "id": "b"}], user_id="u").events
        assert [e.event for e in events] == [EventType.ADD, EventType.ADD]
        assert m.get(events[1].memory_id or "", user_id="u").text == long_turn.strip()
    with Memory(tmp_path / "small", embedder="fake", settings=None) as m:
        m.settings.max_text_chars = 20_000
        with pytest.raises(ValidationError, match="message 1 content has 20001 characters"):
            m.add([{"content": "fine", "id": "a"}, {"content": "x" * 20_001, "id": "b"}], user_id="u")
        assert m.list(user_id="u").total == 0  # nothing of the batch


def test_context_shows_the_matching_part_of_a_long_memory_when_the_whole_does_not_fit(fake_memory: Memory) -> None:
    filler = "The quarterly report covers printer toner, paper stock and the cafeteria menu in detail. "
    text = filler * 60 + "My passport number is stored in the blue folder at home. " + filler * 60
    memory_id = fake_memory.add(text, user_id="u").added[0].memory_id
    small = fake_memory.context("where is my passport number stored?", user_id="u", max_tokens=500)
    [item] = small.items
    assert item.memory_ids == [memory_id] and small.tokens <= 500
    assert "blue folder" in small.text and item.text.count("cafeteria") < 20  # the part, not all 120
    assert "…" in item.text
    large = fake_memory.context("where is my passport number stored?", user_id="u", max_tokens=20_000)
    assert large.items[0].records[0].text == text.strip()  # room enough: the memory whole


def test_export_import_round_trips_the_longest_memories(tmp_path: Path) -> None:
    """An updated memory of ~1,000,000 escape-heavy or non-ASCII characters exports to lines of several MB
    (text up to three times per event line): the import takes them back, record for record."""
    texts = ["\x1b" * 300_000 + " end", "绿茶" * 250_000, "😀" * 400_000]
    dump = tmp_path / "dump.jsonl"
    with Memory(tmp_path / "a", embedder="fake") as m:
        ids = [e.memory_id for e in m.add(texts, user_id="u").events]
        m.update(ids[1], "红茶" * 250_000, user_id="u")
        m.export(dump)
        before = {r.id: r.text for r in m.list(user_id="u").items}
    assert max(len(line) for line in dump.read_bytes().splitlines()) > 1_048_576
    with Memory(tmp_path / "b", embedder="fake") as m:
        m.import_(dump)
        assert {r.id: r.text for r in m.list(user_id="u").items} == before
        assert len(m.history(ids[1], user_id="u")) == 2
