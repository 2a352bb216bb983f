"""Concurrency with real threads: one write path per user (the duplicate check and the insert are atomic for
every entry point), gap-free versions, and an erasure that never disturbs other users."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from remem import EventType, Memory, Message
from remem.pipeline import Pipeline, ScriptedLM
from test_server_support import running_server

FACT = "Alice drinks green tea every morning"


def pipeline_lm(rounds: int) -> ScriptedLM:
    """Extraction of FACT, ``rounds`` times: triage adds it (or finds it) through the writer, no agent run."""
    return ScriptedLM({
        "MemoryExtract": [{"facts": [{"text": FACT, "categories": ["preferences"], "source_ids": ["t1"]}]}] * rounds,
    })


def live_facts(memory: Memory, user: str, text: str) -> list[str]:
    """Live facts with this text, in any case (duplicates are detected on normalised text: the first wins)."""
    return [r.id for r in memory.list(user_id=user, kinds=["fact"], limit=1000).items
            if r.text.casefold() == text.casefold()]


def test_a_raw_add_landing_inside_the_pipelines_insert_is_a_noop(fake_memory: Memory) -> None:
    """The handed race: a plain add of the fact arrives between the pipeline's duplicate check and its insert.
    Both now go through one serialised path, so the late one sees the other's memory: one live copy."""
    Pipeline(fake_memory, pipeline_lm(1))
    writer = fake_memory.writer
    real_twins = writer._twins
    raced: list[Any] = []

    def twins_then_race(user_id: str, records: list[Any], dedupe: Any) -> Any:
        found = real_twins(user_id, records, dedupe)
        if not raced and any(r.kind == "fact" and r.text == FACT for r in records):
            thread = threading.Thread(target=lambda: raced.append(fake_memory.add(FACT, user_id="alice")))
            raced.append(thread)
            thread.start()
            time.sleep(0.3)  # the raw add is now waiting for alice's write lock, after the pipeline's check
        return found

    writer._twins = twins_then_race  # type: ignore[method-assign]
    result = fake_memory.add([Message(content="I drink green tea every morning", id="t1")], user_id="alice",
                             infer=True)
    raced[0].join(10)
    raw = raced[1]
    assert [e.event for e in result.events] == [EventType.ADD]
    assert [e.event for e in raw.events] == [EventType.NOOP] and raw.events[0].memory_id == result.events[0].memory_id
    assert live_facts(fake_memory, "alice", FACT) == [result.events[0].memory_id]


def test_pipeline_and_raw_adds_of_one_fact_from_many_threads(fake_memory: Memory) -> None:
    rounds = 6
    Pipeline(fake_memory, pipeline_lm(rounds))
    calls: list[Callable[[], Any]] = []
    for i in range(rounds):
        calls.append(lambda i=i: fake_memory.add([Message(content=f"tea, as every morning ({i})", id=f"t{i}")],
                                                 user_id="alice", infer=True))
        calls.append(lambda: fake_memory.add(FACT, user_id="alice"))
        calls.append(lambda: fake_memory.add(FACT.upper(), user_id="alice"))
    with ThreadPoolExecutor(8) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(c) for c in calls]]
    added = [e for r in results for e in r.events if e.event is EventType.ADD]
    assert len(added) == 1 and live_facts(fake_memory, "alice", FACT) == [added[0].memory_id]
    assert fake_memory.doctor().ok


def test_eight_writers_on_one_user(fake_memory: Memory) -> None:
    m = fake_memory
    (target,) = [e.memory_id or "" for e in m.add("counter at 0", user_id="u").events]
    per_thread = 10

    def work(t: int) -> list[str]:
        acked = []
        for i in range(per_thread):
            m.add("the same fact for everyone", user_id="u")
            acked.append(m.add(f"distinct fact {t}.{i}", user_id="u").events[0].memory_id or "")
            m.update(target, f"counter by {t}.{i}", user_id="u")
        return acked

    with ThreadPoolExecutor(8) as pool:
        acked = [mid for f in [pool.submit(work, t) for t in range(8)] for mid in f.result(timeout=120)]
    texts = [r.text for r in m.list(user_id="u", limit=1000).items]
    assert texts.count("the same fact for everyone") == 1
    assert len(set(acked)) == 80 and all(m.get(mid, user_id="u") for mid in acked)
    versions = [e.snapshot.version for e in m.history(target, user_id="u") if e.snapshot]
    assert versions == list(range(1, 82))  # gap-free: 80 updates after the ADD
    assert m.get(target, user_id="u").version == 81
    assert m.doctor().ok


def test_forget_user_never_disturbs_other_users(tmp_path: Path) -> None:
    """Erasing a user rewrites the edge shard; other users' reads and writes go on without an error."""
    with Memory(tmp_path / "m", embedder="fake") as m:
        m.add([f"big user memory {i}" for i in range(3000)], user_id="big")
        others = [f"user{i}" for i in range(6)]
        for u in others:
            m.add([f"{u} memory {i}" for i in range(200)], user_id=u)
        stop = threading.Event()
        errors: list[str] = []
        acked: list[tuple[str, str]] = []
        calls = [0]

        def reader(u: str) -> None:
            while not stop.is_set():
                try:
                    assert m.search("memory 7", user_id=u, limit=5)
                    page = m.list(user_id=u, limit=10)
                    m.get(page.items[0].id, user_id=u)
                    calls[0] += 3
                except Exception as exc:  # noqa: BLE001 - every failure is the finding
                    errors.append(f"{type(exc).__name__}: {exc}")

        def writer(u: str) -> None:
            n = 0
            while not stop.is_set():
                try:
                    acked.append((u, m.add(f"{u} new memory {n}", user_id=u).events[0].memory_id or ""))
                    n += 1
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=reader, args=(u,)) for u in others[:4]]
        threads += [threading.Thread(target=writer, args=(u,)) for u in others[4:]]
        for t in threads:
            t.start()
        time.sleep(0.2)
        result = m.forget_user("big")
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert errors == [] and calls[0] > 0 and acked
        assert result.memories == 3000 and m.list(user_id="big", deleted=None).total == 0
        for u, mid in acked:
            assert m.get(mid, user_id=u).user_id == u
        assert [m.list(user_id=u).total for u in others[:4]] == [200] * 4
        assert m.doctor().ok


def test_forget_over_rest_keeps_other_tenants_at_200(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv") as srv:
        srv.memory.add([f"bulk {i}" for i in range(2000)], user_id="acme:big")
        with srv.client(srv.key_b) as c:
            c.post("/v1/users/bob/memories", json={"messages": ["bob likes jazz", "bob lives in Oslo"]})
        stop = threading.Event()
        statuses: list[int] = []

        def other_tenant() -> None:
            with srv.client(srv.key_b) as c:
                while not stop.is_set():
                    for r in (c.post("/v1/users/bob/search", json={"query": "jazz"}),
                              c.get("/v1/users/bob/memories"),
                              c.post("/v1/users/bob/memories", json={"messages": f"note {time.time()}"})):
                        statuses.append(r.status_code)

        threads = [threading.Thread(target=other_tenant) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        with srv.client(srv.key_a) as c:
            assert c.delete("/v1/users/big").json()["memories"] == 2000
        stop.set()
        for t in threads:
            t.join(30)
        assert statuses and set(statuses) == {200}
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": srv.key_a}) as c:
            assert c.get("/v1/users/big/memories").json()["total"] == 0
