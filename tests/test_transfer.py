"""Export -> import: a lossless round trip (records incl. deleted ones, history), into both backends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from remem import EventType, ImportFormatError, Memory, Message, StoreError
from remem.models import MemoryRecord
from remem.stores import MemoryFilter
from remem.stores.edge import EdgeStore


def populate(m: Memory) -> None:
    """Two users, every kind of change: adds (facts, episodes with sources), update, delete, restore."""
    ids = [e.memory_id or "" for e in m.add(["I love green tea", "I live in Lisbon", "Café ☕ in Zürich"],
                                             user_id="alice", categories=["life"], metadata={"n": 1}).added]
    m.add([Message(role="user", name="Bob", content="I started learning the cello", id="D1:3",
                   timestamp=datetime(2023, 5, 8, 13, 56, tzinfo=UTC))], user_id="bob", session_id="s1")
    m.update(ids[1], "I moved from Lisbon to Porto", user_id="alice", reason="moved")
    m.delete(ids[0], user_id="alice")
    m.delete(ids[2], user_id="alice")
    m.restore(ids[2], user_id="alice")


def records_of(m: Memory) -> dict[str, MemoryRecord]:
    return {r.id: r for uid in ("alice", "bob")
            for r in m.store.scroll(MemoryFilter(user_id=uid, deleted=None), offset=0, limit=1000)}


def events_of(m: Memory) -> list[dict[str, Any]]:
    return [e.model_dump(exclude={"id"}) for uid in ("alice", "bob") for e in m.log.for_user(uid)]


@pytest.mark.parametrize("target", ["edge", "qdrant::memory:"])
def test_round_trip_is_lossless(tmp_path: Path, target: str) -> None:
    dump = tmp_path / "dump.jsonl"
    with Memory(tmp_path / "src", embedder="fake") as src:
        populate(src)
        assert src.export(dump) == 4
        before_records, before_events = records_of(src), events_of(src)
    assert any(r.is_deleted for r in before_records.values())
    assert len(before_events) == 8
    with Memory(tmp_path / "dst", embedder="fake", store=target) as dst:
        counts = dst.import_(dump)
        assert counts == {"memories": 4, "events": 8, "skipped": 0}
        after = records_of(dst)
        assert after == before_records  # every field, deleted ones included
        assert events_of(dst) == before_events
        # The import is usable, not just stored: search, dedup and restore work on it.
        assert dst.search("Porto", user_id="alice", mode="bm25")[0].record.text == "I moved from Lisbon to Porto"
        deleted = [r for r in after.values() if r.is_deleted]
        assert [r.text for r in dst.list(user_id="alice", deleted=True).items] == [deleted[0].text]
        assert dst.add("i love green TEA", user_id="alice").added  # the tombstone does not block a re-add
        assert dst.add("Café ☕ in Zürich", user_id="alice").events[0].event is EventType.NOOP


def test_export_of_one_user_and_reimport_skips_existing(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake") as m:
        populate(m)
        only_bob = tmp_path / "bob.jsonl"
        assert m.export(only_bob, user_id="bob") == 1
        lines = [json.loads(x) for x in only_bob.read_text("utf-8").splitlines()]
        assert {line["record"]["user_id"] for line in lines if line["type"] == "memory"} == {"bob"}
        assert {line["event"]["user_id"] for line in lines if line["type"] == "event"} == {"bob"}
        everyone = tmp_path / "all.jsonl"
        m.export(everyone)
        events = m.log.count()
        assert m.import_(everyone) == {"memories": 0, "events": 0, "skipped": 4}
        assert m.log.count() == events


def test_overwrite_replaces_record_and_history_without_duplicating(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake") as m:
        populate(m)
        dump = tmp_path / "dump.jsonl"
        m.export(dump)
        before_records, before_events = records_of(m), events_of(m)
        (alive,) = [r for r in before_records.values() if r.text.startswith("I moved")]
        m.update(alive.id, "I moved to Faro", user_id="alice")
        m.add("something after the export", user_id="bob")
        counts = m.import_(dump, overwrite=True)
        assert counts == {"memories": 4, "events": 8, "skipped": 0}
        assert m.get(alive.id, user_id="alice").text == "I moved from Lisbon to Porto"
        assert [e.event for e in m.history(alive.id, user_id="alice")] == [EventType.ADD, EventType.UPDATE]
        assert m.search("Faro", user_id="alice", mode="bm25") == []  # the vector was rebuilt as well
        assert len(events_of(m)) == len(before_events) + 1  # the later add of bob is kept
        assert m.list(user_id="bob").total == 2


def test_an_id_of_another_user_is_refused(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake") as m:
        (bob_id,) = [e.memory_id for e in m.add("bob's secret", user_id="bob").added]
        forged = MemoryRecord(id=bob_id or "", user_id="alice", text="overwritten by alice")
        path = tmp_path / "forged.jsonl"
        path.write_text("\n".join([
            json.dumps({"type": "header", "format": "remem-export", "version": 1}),
            json.dumps({"type": "memory", "record": forged.model_dump(mode="json")}),
        ]) + "\n", encoding="utf-8")
        for overwrite in (False, True):
            with pytest.raises(ImportFormatError):
                m.import_(path, overwrite=overwrite)
        assert m.get(bob_id or "", user_id="bob").text == "bob's secret"
        assert m.list(user_id="alice").total == 0


class FailingStore:
    """A real edge store whose ``fail_at``-th ``upsert`` fails (a transient fault: a full disk, a lost server)."""

    name = "edge"

    def __init__(self, inner: EdgeStore, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StoreError("disk full (simulated)")
        self.inner.upsert(records, vectors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_failed_import_leaves_store_and_history_unchanged(tmp_path: Path) -> None:
    dump = tmp_path / "big.jsonl"
    with Memory(tmp_path / "src", embedder="fake") as src:
        src.add([f"memory number {i}" for i in range(600)], user_id="alice")  # 3 upsert batches on import
        src.export(dump)
    store = FailingStore(EdgeStore(tmp_path / "dst" / "edge", 64), fail_at=10**9)
    with Memory(tmp_path / "dst", embedder="fake", store=store) as dst:  # type: ignore[arg-type]
        populate(dst)
        before_records, before_events = records_of(dst), events_of(dst)
        store.fail_at = store.calls + 3  # the third batch of the import fails
        with pytest.raises(StoreError):
            dst.import_(dump)
        assert store.calls == store.fail_at
        assert records_of(dst) == before_records
        assert events_of(dst) == before_events
        assert dst.store.count(MemoryFilter(user_id="alice", deleted=None)) == 3
        store.fail_at = 10**9
        assert dst.import_(dump)["memories"] == 600  # and the same file imports once the store is healthy


def test_failed_overwrite_import_puts_replaced_records_back(tmp_path: Path) -> None:
    store = FailingStore(EdgeStore(tmp_path / "m" / "edge", 64), fail_at=10**9)
    with Memory(tmp_path / "m", embedder="fake", store=store) as m:  # type: ignore[arg-type]
        ids = [e.memory_id or "" for e in m.add([f"memory number {i}" for i in range(300)], user_id="alice").added]
        dump = tmp_path / "dump.jsonl"
        m.export(dump)
        m.update(ids[0], "changed after the export", user_id="alice")
        for i in ids[1:260]:  # the import rewrites only what differs: make that two upsert batches
            m.update(i, f"also changed {i}", user_id="alice")
        before_records, before_events = records_of(m), events_of(m)
        store.fail_at = store.calls + 2
        with pytest.raises(StoreError):
            m.import_(dump, overwrite=True)
        store.fail_at = 10**9
        assert records_of(m) == before_records
        assert events_of(m) == before_events
        assert m.search("changed after the export", user_id="alice", mode="dense")[0].record.id == ids[0]


def test_export_pages_through_the_store_without_repeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import remem.transfer

    monkeypatch.setattr(remem.transfer, "EXPORT_PAGE", 7)
    same_time = datetime(2024, 1, 1, tzinfo=UTC)
    with Memory(tmp_path / "m", embedder="fake") as m:
        # 25 turns observed at the same instant: pages must split the tie class without losing or repeating any.
        m.add([Message(content=f"turn {i}", timestamp=same_time) for i in range(25)], user_id="alice")
        m.add([f"fact {i}" for i in range(5)], user_id="alice")
        path = tmp_path / "dump.jsonl"
        assert m.export(path) == 30
        ids = [json.loads(x)["record"]["id"] for x in path.read_text("utf-8").splitlines()
               if json.loads(x)["type"] == "memory"]
        assert sorted(ids) == sorted(r.id for r in m.list(user_id="alice", limit=100).items)
        assert not (tmp_path / "dump.jsonl.tmp").exists()


def test_import_refuses_lines_that_would_corrupt_the_store_or_history(tmp_path) -> None:
    """A memory line of kind "chunk" (an index entry, not a memory), an event of a memory not in the file, and
    an event whose snapshot names another user are refused with the line, nothing written."""
    import json

    from remem import ImportFormatError

    dump = tmp_path / "good.jsonl"
    with Memory(tmp_path / "a", embedder="fake") as m:
        m.add(["one", "two"], user_id="imp")
        m.export(dump)
    lines = [json.loads(x) for x in dump.read_text().splitlines()]
    memories = [x for x in lines if x["type"] == "memory"]
    events = [x for x in lines if x["type"] == "event"]

    def variant(name: str, change) -> object:
        changed = json.loads(json.dumps(lines))
        change(changed)
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(x) for x in changed) + "\n")
        return path

    def chunk(ls):
        next(x for x in ls if x["type"] == "memory")["record"]["kind"] = "chunk"

    def stray(ls):
        ev = json.loads(json.dumps(events[0]))
        ev["event"]["memory_id"] = "00000000-0000-4000-8000-000000000000"
        ev["event"]["snapshot"] = None
        ls.append(ev)

    def victim(ls):
        next(x for x in ls if x["type"] == "event")["event"]["snapshot"]["user_id"] = "victimuser"

    assert memories and events
    for name, change in (("chunk", chunk), ("stray", stray), ("victim", victim)):
        with Memory(tmp_path / name, embedder="fake") as m:
            with pytest.raises(ImportFormatError):
                m.import_(variant(name, change))
            assert m.list(user_id="imp").total == 0 and m.log.count("imp") == 0
