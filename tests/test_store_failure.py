"""A vector store that fails (a Qdrant server going down, a full disk): the write raises ``StoreError``, what
reached the store is undone, nothing is recorded, and a retry is safe. The failing store is a real edge store
with a switch that makes its writes fail part-way (fault injection, not a mock)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from remem import Memory, StoreError
from remem.models import MemoryRecord
from remem.stores.base import MemoryFilter
from remem.stores.edge import EdgeStore


class FailingStore(EdgeStore):
    """Writes the first record of an upsert, then fails (``down``); deletes fail too when ``undo_fails``."""

    down = False
    undo_fails = False

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if self.down:
            super().upsert(records[:1], vectors[:1])
            raise StoreError("the vector store went away")
        super().upsert(records, vectors)

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if self.down and self.undo_fails:
            raise StoreError("the vector store went away")
        super().delete(ids, flt)


def texts(m: Memory) -> list[str]:
    return sorted(r.text for r in m.list(user_id="u", limit=100).items)


def test_a_failed_store_write_is_undone_and_nothing_is_recorded(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "store", 64)
    with Memory(tmp_path / "home", embedder="fake", store=store) as m:
        m.add("first", user_id="u")
        store.down = True
        with pytest.raises(StoreError, match="went away"):
            m.add(["second", "third"], user_id="u")
        assert texts(m) == ["first"]  # the record that reached the store was taken back
        assert m.log.count("u") == 1 and m.log.intents() == []
        store.down = False
        assert [e.event for e in m.add(["second", "third"], user_id="u").events] == ["ADD", "ADD"]
        assert texts(m) == ["first", "second", "third"] and m.doctor().ok


def test_when_the_undo_fails_too_the_next_write_rolls_it_back(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "store", 64)
    with Memory(tmp_path / "home", embedder="fake", store=store) as m:
        m.add("first", user_id="u")
        store.down, store.undo_fails = True, True
        with pytest.raises(StoreError, match="went away") as info:
            m.add(["second", "third"], user_id="u")
        assert any("finished on the next open" in note for note in info.value.__notes__)
        assert [i.direction for i in m.log.intents()] == ["back"]  # "second" is in the store, unrecorded
        store.down, store.undo_fails = False, False
        assert [e.event for e in m.add("fourth", user_id="u").events] == ["ADD"]  # settles the intent first
        assert texts(m) == ["first", "fourth"]
        assert m.log.intents() == [] and m.log.count("u") == 2 and m.doctor().ok
        assert [e.event for e in m.add(["second", "third"], user_id="u").events] == ["ADD", "ADD"]
