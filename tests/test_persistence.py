"""Persistence across process restarts (a writer killed with os._exit) and one process per data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from remem import ConfigurationError, EventType, Memory, StoreError, StoreLockedError

WRITER = """
import os, sys
from remem import Memory
m = Memory(sys.argv[1], embedder="fake")
ids = [e.memory_id for e in m.add(["I love green tea", "I live in Lisbon", "temporary"], user_id="alice").added]
m.update(ids[1], "I moved to Porto", user_id="alice")
m.delete(ids[2], user_id="alice")
m.add("bob's memory", user_id="bob")
print(",".join(ids), flush=True)
os._exit(0)  # no close(), no flush: what was acknowledged must survive
"""


def run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_writes_survive_a_killed_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run(WRITER, str(home))
    assert proc.returncode == 0, proc.stderr
    tea, porto, temp = proc.stdout.strip().split(",")
    with Memory(home, embedder="fake") as m:  # the dead writer's lock is gone with it
        assert {r.text for r in m.list(user_id="alice").items} == {"I love green tea", "I moved to Porto"}
        assert m.get(porto, user_id="alice").version == 2
        assert m.get(temp, user_id="alice", include_deleted=True).is_deleted
        assert [e.event for e in m.history(porto, user_id="alice")] == [EventType.ADD, EventType.UPDATE]
        assert m.search("green tea", user_id="alice")[0].record.id == tea
        assert m.search("Porto", user_id="alice", mode="bm25")[0].record.id == porto
        assert [r.text for r in m.list(user_id="bob").items] == ["bob's memory"]
        assert m.add("I love green tea", user_id="alice").events[0].event is EventType.NOOP
        m.add("written by the second process", user_id="alice")
    with Memory(home, embedder="fake") as m:  # and a clean close/reopen keeps everything too
        assert m.list(user_id="alice").total == 3
        assert m.stats().history_events == 7  # 3 adds, update, delete, bob, the second writer


def test_second_process_gets_store_locked_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Memory(home, embedder="fake") as m:
        m.add("held by this process", user_id="alice")
        proc = run("""
            import sys
            from remem import Memory, StoreLockedError
            try:
                Memory(sys.argv[1], embedder="fake")
            except StoreLockedError as exc:
                print(type(exc).__name__, exc.context["pid"])
                sys.exit(3)
            """, str(home))
        assert proc.returncode == 3, proc.stderr
        name, pid = proc.stdout.split()
        assert name == "StoreLockedError" and pid == str(os.getpid())
        assert m.list(user_id="alice").total == 1  # the refused process changed nothing
    proc = run("""
        import sys
        from remem import Memory
        with Memory(sys.argv[1], embedder="fake") as m:
            print(m.list(user_id="alice").total)
        """, str(home))
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr


def test_second_memory_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Memory(tmp_path / "home", embedder="fake"), pytest.raises(StoreLockedError):
        Memory(tmp_path / "home", embedder="fake")
    with Memory(tmp_path / "home", embedder="fake") as again:
        assert again.list(user_id="alice").total == 0


def test_a_closed_memory_refuses_work_clearly(tmp_path: Path) -> None:
    m = Memory(tmp_path / "home", embedder="fake")
    m.add("something", user_id="alice")
    m.close()
    m.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        m.list(user_id="alice")


def test_a_failed_open_releases_the_store_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "history.sqlite3").mkdir(parents=True)  # SQLite cannot open a directory
    with pytest.raises(StoreError, match="history database"):
        Memory(home, embedder="fake")
    (home / "history.sqlite3").rmdir()
    with Memory(home, embedder="fake") as m:  # not StoreLockedError: the failed open let go of the store
        assert m.list(user_id="alice").total == 0


def test_a_corrupt_metadata_file_is_a_configuration_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "remem.json").write_text("{not json")
    with pytest.raises(ConfigurationError):
        Memory(home, embedder="fake")
