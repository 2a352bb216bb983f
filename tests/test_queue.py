"""The durable pending queue: failures keep the turn, reprocess finishes it, forget_user erases it — on SQLite
and on Postgres (the ``database_url`` fixture; with Postgres the pgvector store shares the database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remem import EventType, ExtractionError, MaintenanceError, Memory, Message
from remem.pipeline import Pipeline, ScriptedLM, react_script
from remem.pipeline.queue import JobPayload, PendingQueue

GARBAGE = "Sure! Here are the facts: coffee, tea }{ not the format you asked for"


def good_lm(text: str = "Alice likes green tea", source: str = "t1") -> ScriptedLM:
    """Extraction only: a fact unlike anything the user has is added without the agent."""
    return ScriptedLM({
        "MemoryExtract": [{"facts": [{"text": text, "categories": ["preferences"], "source_ids": [source]}]}],
    })


def open_memory(home: Path, database_url: str | None, **kw: object) -> Memory:
    return Memory(home, embedder="fake", database_url=database_url, store="pgvector" if database_url else None,
                  **kw)  # type: ignore[arg-type]


def test_garbage_output_is_a_typed_error_and_the_turn_stays_queued(tmp_path: Path, database_url: str | None) -> None:
    bad = ScriptedLM([], default=GARBAGE)
    with open_memory(tmp_path / "m", database_url, lm=bad) as memory:
        with pytest.raises(ExtractionError) as info:
            memory.add([Message(content="I like green tea", id="t1")], user_id="alice", infer=True)
        err = info.value
        assert err.raw_output == GARBAGE and err.context["attempts"] == 3
        assert err.context["usage"]["calls"] == 3  # 3 attempts (DSPy's chat -> JSON re-ask is off)
        job_id = err.context["job_id"]
        # the turn is recoverable right away (an episode) and queued for extraction
        assert [r.text for r in memory.list(user_id="alice").items] == ["I like green tea"]
        queue = PendingQueue(memory.log)
        [job] = queue.pending()
        assert (job.id, job.user_id, job.stage, job.attempts) == (job_id, "alice", "stored", 1)
        assert job.raw_output == GARBAGE and job.payload.messages[0].content == "I like green tea"
    # a later process with a working LM: `remem reprocess` does exactly this
    with open_memory(tmp_path / "m", database_url, lm=good_lm()) as memory:
        report = memory.pipeline.reprocess()
        assert [(o.job_id, o.ok) for o in report.outcomes] == [(job_id, True)]
        assert [e.event for e in report.outcomes[0].events] == [EventType.ADD]
        assert report.usage.calls == 1
        facts = memory.list(user_id="alice", kinds=["fact"]).items
        assert [(f.text, f.source_ids) for f in facts] == [("Alice likes green tea", ["t1"])]
        assert memory.list(user_id="alice", kinds=["episode"]).total == 1  # the turn was not stored twice
        assert memory.pipeline.queue.pending() == [] and memory.pipeline.queue.count("done") == 1
        assert memory.pipeline.reprocess().outcomes == []


def test_maintenance_failure_keeps_the_job_and_a_timeout_is_retried(backend_memory: Memory) -> None:
    fake_memory = backend_memory
    fake_memory.add("Alice likes black tea", user_id="alice", categories=["preferences"])  # a conflict: the agent
    lm = ScriptedLM({
        "MemoryExtract": [TimeoutError("LM took too long"),
                          {"facts": [{"text": "Alice likes green tea", "source_ids": ["t1"]}]}],
        "UpdateMemory": [],
    }, default="[[ ## next_thought ## ]]\nhmm\n\n[[ ## next_tool_args ## ]]\nnot json")
    Pipeline(fake_memory, lm, conflict_floor=0.3)
    with pytest.raises(MaintenanceError) as info:
        fake_memory.add([Message(content="I like green tea", id="t1")], user_id="alice", infer=True)
    assert "not json" in (info.value.raw_output or "")
    assert [f.text for f in fake_memory.list(user_id="alice", kinds=["fact"]).items] == ["Alice likes black tea"]
    [job] = fake_memory.pipeline.queue.pending()
    assert job.attempts == 1 and "maintenance failed" in (job.last_error or "")
    good = ScriptedLM({
        "MemoryExtract": [{"facts": [{"text": "Alice likes green tea", "source_ids": ["t1"]}]}],
        "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice likes green tea"})),
    })
    Pipeline(fake_memory, good, conflict_floor=0.3)
    assert fake_memory.pipeline.reprocess(user_id="alice").failed == []
    assert [f.text for f in fake_memory.list(user_id="alice", kinds=["fact"]).items] == ["Alice likes green tea"]


def test_a_job_queued_before_a_crash_is_stored_and_processed_by_reprocess(tmp_path: Path,
                                                                          database_url: str | None) -> None:
    with open_memory(tmp_path / "m", database_url) as memory:  # no LM: the queue exists anyway
        queue = PendingQueue(memory.log)
        job_id = queue.enqueue("alice", JobPayload(messages=[Message(content="I like green tea", id="t1")]))
        assert memory.list(user_id="alice").total == 0  # crashed before the episodes were stored
    with open_memory(tmp_path / "m", database_url, lm=good_lm()) as memory:
        report = memory.pipeline.reprocess()
        assert [o.ok for o in report.outcomes] == [True] and report.outcomes[0].job_id == job_id
        kinds = sorted((r.kind, r.text) for r in memory.list(user_id="alice").items)
        assert kinds == [("episode", "I like green tea"), ("fact", "Alice likes green tea")]


def test_forget_user_purges_queued_turns_even_without_an_lm(tmp_path: Path, database_url: str | None) -> None:
    with open_memory(tmp_path / "m", database_url, lm=ScriptedLM([], default=GARBAGE)) as memory:
        for user in ("alice", "bob"):
            with pytest.raises(ExtractionError):
                memory.add([Message(content=f"{user} likes tea")], user_id=user, infer=True)
    with open_memory(tmp_path / "m", database_url) as memory:
        result = memory.forget_user("alice")
        assert result.other["pending_jobs"] == 1
        with memory.storage.database.read() as tx:
            rows = tx.fetchall("SELECT user_id, payload FROM pending_jobs")
        assert [r[0] for r in rows] == ["bob"] and all("alice" not in r[1] for r in rows)


def test_background_processing_is_durable(backend_memory: Memory) -> None:
    fake_memory = backend_memory
    pipeline = Pipeline(fake_memory, good_lm())
    job_id, episodes = pipeline.submit([Message(content="I like green tea", id="t1")], user_id="alice")
    assert [e.event for e in episodes] == [EventType.ADD]
    pipeline.process_in_background(job_id)
    assert pipeline.wait(30)
    assert pipeline.queue.get(job_id).status == "done"  # type: ignore[union-attr]
    assert fake_memory.list(user_id="alice", kinds=["fact"]).total == 1
