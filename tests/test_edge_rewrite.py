"""The edge store's rewrite (what makes erasure reach the write-ahead log) and its crash recovery."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from remem.models import MemoryRecord
from remem.stores.base import MemoryFilter
from remem.stores.edge import EdgeStore


def _fill(store: EdgeStore) -> list[MemoryRecord]:
    records = [MemoryRecord(user_id=f"u{i % 3}", text=f"note number {i}") for i in range(30)]
    store.upsert(records, np.random.default_rng(0).random((30, 8), dtype=np.float32))
    return records


def test_rewrite_keeps_every_point_and_payload(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, 8)
    records = _fill(store)
    assert store.rewrite() == 30
    for uid in ("u0", "u1", "u2"):
        assert store.count(MemoryFilter(user_id=uid)) == 10
    got = store.get([r.id for r in records], MemoryFilter(user_id="u1"))
    assert [r.text for r in got] == [r.text for r in records if r.user_id == "u1"]
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "bm25.json", "shard"]


def test_open_completes_a_swap_interrupted_after_the_copy(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, 8)
    _fill(store)
    store.close()
    # State after a crash between the two renames: old shard moved aside, complete copy not yet in place.
    shutil.copytree(tmp_path / "shard", tmp_path / "shard.new")
    (tmp_path / "shard.new" / "COMPLETE").touch()
    (tmp_path / "shard").rename(tmp_path / "shard.old")
    reopened = EdgeStore(tmp_path, 8)
    assert reopened.count(MemoryFilter(user_id=None, all_users=True)) == 30
    reopened.close()
    assert not (tmp_path / "shard.old").exists() and not (tmp_path / "shard.new").exists()


def test_open_rolls_back_an_incomplete_copy(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path, 8)
    _fill(store)
    store.close()
    (tmp_path / "shard.new").mkdir()  # a copy that never finished (no COMPLETE marker)
    (tmp_path / "shard").rename(tmp_path / "shard.old")
    reopened = EdgeStore(tmp_path, 8)
    assert reopened.count(MemoryFilter(user_id=None, all_users=True)) == 30
    reopened.close()
    assert not (tmp_path / "shard.new").exists()
