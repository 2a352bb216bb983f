"""Background processing: ``add(infer=True, background=True)`` returns once the turn is durable and readable; a
worker (a thread here, ``remem worker`` processes on Postgres) finishes it; a job is processed by one worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from remem import EventType, Memory, Message, ValidationError
from remem.pipeline import JobBusyError, Pipeline, ScriptedLM, Worker
from remem.pipeline.scripted import ScriptedRequest
from remem.storage.usage import usage_totals

ALICE_CAT = {"facts": [{"text": "Alice adopted a cat named Miso", "categories": ["possessions"], "source_ids": ["t1"]}]}


def new_message_ids(request: ScriptedRequest) -> list[str]:
    section = request.user.split("[[ ## new_messages ## ]]", 1)[1].split("[[ ## recent_context ## ]]", 1)[0]
    return re.findall(r"^\[([^\]\s]+)\] ", section, flags=re.MULTILINE)


def test_background_add_returns_before_processing_and_the_worker_finishes_it(fake_memory: Memory) -> None:
    gate, started = threading.Event(), threading.Event()

    def extract(request: ScriptedRequest) -> dict[str, object]:
        started.set()
        assert gate.wait(30), "the test never opened the gate"
        return ALICE_CAT

    pipeline = Pipeline(fake_memory, ScriptedLM({"MemoryExtract": extract}))
    result = fake_memory.add([Message(content="I adopted a cat, her name is Miso", id="t1", name="Alice")],
                             user_id="alice", infer=True, background=True)
    assert result.pending is True and result.job_id is not None
    assert result.events == [] and result.usage.calls == 0
    assert [e.event for e in result.episodes] == [EventType.ADD]  # type: ignore[attr-defined]
    # reads see the turn at once, while extraction has not finished
    [hit] = fake_memory.search("cat Miso", user_id="alice", limit=1)
    assert hit.record.text == "I adopted a cat, her name is Miso" and hit.record.kind == "episode"
    assert started.wait(30)
    assert fake_memory.list(user_id="alice", kinds=["fact"]).total == 0
    assert pipeline.queue.get(result.job_id).status == "pending"  # type: ignore[union-attr]
    with pytest.raises(JobBusyError):  # the worker holds the job: no second processing
        pipeline.process(result.job_id)
    gate.set()
    assert pipeline.wait(30)
    assert [r.text for r in fake_memory.list(user_id="alice", kinds=["fact"]).items] == [
        "Alice adopted a cat named Miso"]
    assert pipeline.queue.get(result.job_id).status == "done"  # type: ignore[union-attr]
    assert fake_memory.stats().lm_usage.calls == 1


def test_background_needs_infer(fake_memory: Memory) -> None:
    with pytest.raises(ValidationError, match="background"):
        fake_memory.add("Alice likes tea", user_id="alice", background=True)


def test_a_failed_background_job_waits_for_its_retry(fake_memory: Memory) -> None:
    pipeline = Pipeline(fake_memory, ScriptedLM([], default="garbage"), retries=0)
    result = fake_memory.add("I like tea", user_id="alice", infer=True, background=True)
    assert pipeline.wait(30)
    job = pipeline.queue.get(result.job_id or "")
    assert job is not None and (job.status, job.attempts, job.claimed_by) == ("pending", 1, None)
    assert "extraction failed" in (job.last_error or "")
    assert fake_memory.list(user_id="alice").total == 1  # the episode


def test_two_workers_never_process_one_job_twice(backend_memory: Memory) -> None:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def extract(request: ScriptedRequest) -> dict[str, object]:
        ids = new_message_ids(request)
        with lock:
            seen.update(ids)
        time.sleep(0.01)  # let the other worker try to take the same job meanwhile
        return {"facts": []}

    pipeline = Pipeline(backend_memory, ScriptedLM({"MemoryExtract": extract}))
    jobs = [pipeline.submit([Message(content=f"turn number {i}", id=f"t{i}")], user_id=f"u{i % 3}")[0]
            for i in range(24)]
    workers = [Worker(pipeline, name=f"w{k}") for k in range(2)]
    with ThreadPoolExecutor(2) as pool:
        outcomes = [o for f in [pool.submit(w.drain) for w in workers] for o in f.result(timeout=300)]
    assert sorted(o.job_id for o in outcomes) == sorted(jobs) and all(o.ok for o in outcomes)
    assert seen == Counter({f"t{i}": 1 for i in range(24)})
    assert pipeline.queue.count("done") == 24 and pipeline.queue.count("pending") == 0
    assert sum(backend_memory.list(user_id=f"u{k}", kinds=["episode"]).total for k in range(3)) == 24
    assert backend_memory.stats().lm_usage.calls == 24


def test_two_worker_processes_share_one_postgres_queue(tmp_path: Path, postgres_url: str) -> None:
    """Two `remem worker --once` processes on one shared deployment (queue, history and the pgvector store in one
    Postgres database; each process its own REMEM_HOME): every job is processed exactly once — counted by the LM
    usage each process records per processed job — and its episode is in the shared store."""
    with Memory(tmp_path / "submitter", embedder="fake", database_url=postgres_url, store="pgvector",
                lm=ScriptedLM([])) as m:
        jobs = [m.pipeline.submit([Message(content=f"turn {i}", id=f"t{i}")], user_id=f"u{i % 4}")[0]
                for i in range(20)]
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"routes": {"MemoryExtract": []}, "default": {"facts": []}, "latency": 0.05}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEM_")}
    env.update(REMEM_DATABASE_URL=postgres_url, REMEM_STORE="pgvector", REMEM_EMBEDDER="fake",
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    procs = [subprocess.Popen([sys.executable, "-c", "from remem.cli import main; main()", "worker", "--once",
                               "--lm", f"scripted:{script}", "--home", str(tmp_path / f"w{k}"), "--name", f"w{k}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    done = [int(re.search(r"(\d+) done, 0 failed", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(done) == 20, outputs
    with Memory(tmp_path / "submitter", embedder="fake", database_url=postgres_url, store="pgvector") as m:
        assert m.storage.queue.count("done") == 20 and m.storage.queue.count("pending") == 0
        assert sum(m.list(user_id=f"u{k}", kinds=["episode"]).total for k in range(4)) == 20
        assert m.doctor().ok
        assert usage_totals(m.storage.database).calls == 20  # one extraction per job, none twice
        with m.storage.database.read() as tx:
            assert tx.fetchone("SELECT SUM(operations) FROM lm_usage")[0] == 20  # type: ignore[index]
        assert {m.storage.queue.get(j).status for j in jobs} == {"done"}  # type: ignore[union-attr]


def test_remem_worker_once_drains_the_embedded_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from remem.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    with Memory(home, lm=ScriptedLM([])) as m:
        job_id, _ = m.pipeline.submit([Message(content="I adopted a cat", id="t1")], user_id="alice")
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"routes": {"MemoryExtract": [ALICE_CAT]}}))
    with pytest.raises(SystemExit) as info:
        main(["worker", "--once", "--lm", f"scripted:{script}", "--home", str(home)])
    assert info.value.code == 0
    assert "1 done, 0 failed" in capsys.readouterr().out
    with Memory(home) as m:
        assert m.storage.queue.get(job_id).status == "done"  # type: ignore[union-attr]
        assert [r.text for r in m.list(user_id="alice", kinds=["fact"]).items] == ["Alice adopted a cat named Miso"]
        assert m.stats().lm_usage.calls == 1
        assert m.forget_user("alice").other["lm_usage"] == 1
        assert m.stats().lm_usage.calls == 0
