"""`remem chat` and `remem reprocess` through the real CLI entry point, with a scripted LM file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from remem import Memory
from remem.cli import main
from remem.pipeline import react_script


def write_script(path: Path, routes: dict[str, list[object]], default: str | None = None) -> str:
    path.write_text(json.dumps({"routes": routes, "default": default}))
    return f"scripted:{path}"


def run(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True)
def _fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")


def test_chat_shows_searches_memory_changes_and_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    with Memory(home) as memory:
        memory.add("Alice likes coffee", user_id="alice", categories=["preferences"])
    lm = write_script(tmp_path / "script.json", {
        "ResponseGenerator": [
            *react_script(("fetch_similar_memories", {"search_text": "coffee"}),
                          outputs={"response": "Noted: tea from now on.", "save_memory": True}),
        ],
        "MemoryExtract": [{"facts": [{"text": "Alice prefers tea over coffee", "categories": ["preferences"]}]}],
        "UpdateMemory": react_script(("update_memory", {"id": 0, "new_text": "Alice prefers tea over coffee"})),
    })
    monkeypatch.setenv("REMEM_CONFLICT_FLOOR", "0.3")  # the fake embedder's cosine scale: the update is a conflict
    code, out = run(["chat", "--user", "alice", "--lm", lm, "--home", str(home)],
                    "Actually I like tea more than coffee\n/memories\n/history\n/forget\nno\n/quit\n",
                    monkeypatch, capsys)
    assert code == 0, out
    assert '⌕ fetch_similar_memories(search_text=coffee) → 1: "Alice likes coffee"' in out
    assert "assistant> Noted: tea from now on." in out
    assert '~ updated "Alice likes coffee" → "Alice prefers tea over coffee"' in out
    assert "1 facts, 1 raw turns for alice" in out and "Alice prefers tea over coffee [preferences]" in out
    assert "UPDATE" in out and "kept everything" in out
    with Memory(home) as memory:
        assert [r.text for r in memory.list(user_id="alice", kinds=["fact"]).items] == ["Alice prefers tea over coffee"]


def test_chat_survives_a_broken_model_and_reprocess_finishes_the_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    broken = write_script(tmp_path / "broken.json", {
        "ResponseGenerator": react_script(outputs={"response": "Congratulations!", "save_memory": True}),
    }, default="<garbage/>")
    code, out = run(["chat", "-u", "alice", "--lm", broken, "--home", str(home)],
                    "I got a new job at Acme\nhello again\n", monkeypatch, capsys)
    assert code == 0, out
    assert "assistant> Congratulations!" in out
    assert "memory not updated" in out and "remem reprocess" in out
    assert "the model failed" in out  # the second message: the chat goes on after an error

    code, out = run(["reprocess", "--list", "--home", str(home)], "", monkeypatch, capsys)
    assert code == 0 and "1 pending" in out and "alice" in out

    code, out = run(["reprocess", "--lm", broken, "--home", str(home)], "", monkeypatch, capsys)
    assert code == 1 and "0 done, 1 still pending" in out

    good = write_script(tmp_path / "good.json", {
        "MemoryExtract": [{"facts": [{"text": "Alice works at Acme", "categories": ["work"]}]}],
    })
    code, out = run(["reprocess", "--lm", good, "--home", str(home), "--user", "alice"], "", monkeypatch, capsys)
    assert code == 0, out
    assert "1 ADD" in out and "1 done, 0 still pending" in out
    with Memory(home) as memory:
        assert sorted((r.kind, r.text) for r in memory.list(user_id="alice").items) == [
            ("episode", "I got a new job at Acme"), ("fact", "Alice works at Acme")]


def test_chat_without_a_model_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["chat", "--user", "alice", "--home", str(tmp_path / "h")], "", monkeypatch, capsys)
    assert code == 1 and "no language model" in out
    code, out = run(["chat", "--user", "alice", "--lm", "gpt-4o", "--home", str(tmp_path / "h")], "",
                    monkeypatch, capsys)
    assert code == 1 and "no provider prefix" in out
