"""``remem import --from chatgpt|claude|mem0``: the CLI calls the library importer and prints its summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remem import Memory
from remem.cli import main

DATA = Path(__file__).parent / "data" / "imports"


@pytest.fixture(autouse=True)
def _fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_import_chatgpt_prints_a_summary_and_reruns_are_noops(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "chatgpt_conversations.json")
    code, out, err = run(capsys, "import", path, "--from", "chatgpt", "--user", "alice")
    assert code == 0, err
    assert out.splitlines() == ["imported 7 messages from 2 conversations for alice (chatgpt)", "skipped 3:",
                                "       1  hidden from the conversation", "       1  tool message",
                                "       1  tool call"]
    code, out, _ = run(capsys, "import", path, "--from", "chatgpt", "-u", "alice", "--json")
    summary = json.loads(out)
    assert (code, summary["imported"], summary["skipped_by_reason"]) == (
        0, 0, {"already imported": 7, "hidden from the conversation": 1, "tool message": 1, "tool call": 1})


def test_import_mem0_and_claude(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "import", str(DATA / "mem0_get_all.json"), "--from", "mem0")
    assert code == 0
    assert out.splitlines()[0] == "imported 3 memories for alice, bob (mem0)"
    code, out, _ = run(capsys, "import", str(DATA / "claude_conversations.json"), "--from", "claude", "-u", "bob")
    assert code == 0
    assert out.splitlines() == ["imported 4 messages from 2 conversations for bob (claude)", "skipped 1:",
                                "       1  no text"]
    with Memory() as memory:  # REMEM_HOME is the test's home
        assert memory.list(user_id="bob").total == 5


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "chatgpt", "--user", "alice"], "bad.json:1:2: not valid JSON"),
    (["--from", "chatgpt"], "say whose (user_id / --user)"),
    (["--from", "gemini", "--user", "alice"], "--from: unknown format 'gemini'"),
    (["--user", "alice"], "--user applies to --from chatgpt, claude or mem0"),
    (["--from", "claude", "--user", "alice", "--overwrite"], "--overwrite applies to remem export files only"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         args: list[str], message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[}")
    code, _, err = run(capsys, "import", str(bad), *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    with Memory() as memory:
        assert memory.stats().memories == 0


@pytest.mark.parametrize(("content", "args", "message"), [
    ('[{"id": "c", "create_time": 1e20, "mapping": {}}]', [], "$[0].create_time: Value error, create_time 1e+20 is"),
    ('[{"id": "c", "create_time": NaN, "mapping": {}}]', [], "$[0].create_time: Value error, create_time nan is"),
    ("[" * 200_000, [], "bad.json:1:65: JSON nested more than 64 levels deep"),
    ('[{"id": "c\\ud800", "mapping": {}}]', [], "$[0].id: Value error, id contains a lone surrogate"),
    ('[{"id": "c", "title": "\\u0000", "mapping": {}}]', [], "$[0].title: Value error, title contains a NUL"),
    ("[" + " " * 3000 + "]", ["--max-bytes", "2000"], "more than 2,000 bytes of JSON, the import limit"),
])
def test_hostile_exports_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str,
                                            args: list[str], message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = run(capsys, "import", str(bad), "--from", "chatgpt", "--user", "alice", *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    with Memory() as memory:
        assert memory.stats().memories == 0


def test_max_bytes_is_for_chat_and_mem0_exports(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "import", str(DATA / "mem0_get_all.json"), "--max-bytes", "10")
    assert code == 2 and "--max-bytes applies to --from chatgpt, claude or mem0" in err
    code, out, _ = run(capsys, "import", str(DATA / "mem0_get_all.json"), "--from", "mem0", "--max-bytes", "100000")
    assert code == 0 and out.startswith("imported 3 memories")
