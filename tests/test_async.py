"""AsyncMemory (the sync logic in worker threads) and concurrent writers of one user."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from remem import AsyncMemory, EventType, Memory, MemoryRecord


async def test_async_memory_full_cycle(tmp_path: Path) -> None:
    async with AsyncMemory(tmp_path / "home", embedder="fake") as am:
        result = await am.add(["I love green tea", "I live in Lisbon"], user_id="alice")
        mid = result.added[0].memory_id
        assert mid is not None
        hits = await am.search("green tea", user_id="alice")
        assert hits[0].record.id == mid
        updated = await am.update(mid, "I love oolong tea", user_id="alice")
        assert updated.version == 2 and (await am.get(mid, user_id="alice")).text == "I love oolong tea"
        await am.delete(mid, user_id="alice")
        assert (await am.list(user_id="alice")).total == 1
        await am.restore(mid, user_id="alice")
        assert [e.event for e in await am.history(mid, user_id="alice")] == [
            EventType.ADD, EventType.UPDATE, EventType.DELETE, EventType.RESTORE]
        assert (await am.stats()).memories == 2 and await am.users() == ["alice"]
        path = tmp_path / "dump.jsonl"
        assert await am.export(path) == 2
        assert (await am.forget_user("alice")).memories == 2
        assert (await am.import_(path))["memories"] == 2


async def test_async_calls_run_in_worker_threads_concurrently(tmp_path: Path) -> None:
    async with AsyncMemory(sync=Memory(tmp_path / "home", embedder="fake")) as am:
        texts = [f"user {u} fact {i}" for u in range(4) for i in range(10)]
        results = await asyncio.gather(*(am.add(t, user_id=f"user{t.split()[1]}") for t in texts))
        assert all(len(r.added) == 1 for r in results)
        # The work runs in a worker thread, not on the event loop (progress callbacks report where they run).
        where: list[int] = []
        await am.add_records([MemoryRecord(user_id="user1", text="added via records")],
                             progress=lambda done, total: where.append(threading.get_ident()))
        assert where and where[0] != threading.get_ident()
        for u in range(4):
            assert (await am.list(user_id=f"user{u}")).total == 10 + (u == 1)


def test_concurrent_adds_for_one_user_lose_and_duplicate_nothing(fake_memory: Memory) -> None:
    m = fake_memory
    threads, per_thread = 6, 25
    # Every thread adds its own facts plus the same shared ones: each shared fact must be stored exactly once.
    shared = [f"shared fact {i}" for i in range(10)]
    errors: list[Exception] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                m.add(f"thread {n} fact {i}", user_id="alice")
                if i < len(shared):
                    m.add(shared[(i + n) % len(shared)], user_id="alice")
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    texts = [r.text for r in m.list(user_id="alice", limit=1000).items]
    assert len(texts) == len(set(texts)) == threads * per_thread + len(shared)
    assert set(shared) <= set(texts)
    assert m.log.count("alice") == len(texts)  # one ADD event per stored memory, no orphan events
