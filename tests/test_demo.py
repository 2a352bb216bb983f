"""``remem demo``: runs for real (edge store + packaged ONNX embedder) into a temporary REMEM_HOME."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from remem import Memory
from remem.demo import load_conversation, run_demo


def test_conversation_file_tells_the_story() -> None:
    convo = load_conversation()
    assert 2 <= len(convo.users) <= 3
    ids = [u.user_id for u in convo.users]
    assert all(i.startswith("demo-") for i in ids) and len(set(ids)) == len(ids)
    assert all(len(u.sessions) >= 2 for u in convo.users)
    showcase = convo.showcase
    alice = next(u for u in convo.users if u.user_id == showcase.user_id)
    old = next(f for f in alice.facts if f.key == showcase.update.fact)
    assert "coffee" in old.text and "tea" in showcase.update.text  # the changed preference
    turns = {t.id for u in convo.users for s in u.sessions for t in s.turns}
    assert showcase.delete.source_id in turns


def test_run_demo_twice_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    sink = io.StringIO()
    console = Console(file=sink, width=160)
    first = run_demo(home=home, console=console)
    assert first.ok, [c for c in first.checks if not c.ok]
    assert {c.name for c in first.checks} >= {"isolation", "update keeps id and history", "delete + restore",
                                              "time filter", "dedupe"}
    assert first.reset_memories == 0
    second = run_demo(home=home, console=console)
    assert second.ok
    assert second.reset_memories == sum(r.added for r in first.ingested)  # the demo erased its own users
    assert [r.added for r in second.ingested] == [r.added for r in first.ingested]
    with Memory(home) as memory:  # nothing else piles up: the store holds exactly one run's memories
        assert memory.stats().memories == sum(r.added for r in second.ingested)
    assert "✓ isolation" in sink.getvalue()


def test_demo_keeps_other_users(tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    with Memory(home) as memory:
        memory.add("a real user's memory", user_id="alice")
    report = run_demo(home=home, console=Console(file=io.StringIO()))
    assert report.ok
    with Memory(home) as memory:
        assert [r.text for r in memory.list(user_id="alice").items] == ["a real user's memory"]


def test_remem_demo_command_twice(tmp_path: Path) -> None:
    env = {**os.environ, "REMEM_HOME": str(tmp_path / "home"), "COLUMNS": "160"}
    env.pop("REMEM_EMBEDDER", None)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "remem.cli", "demo"], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert "✓ isolation" in done.stdout and "✗" not in done.stdout
        assert "local:" in done.stdout  # the real packaged embedder, not the fake one
        assert "Traceback" not in done.stderr
