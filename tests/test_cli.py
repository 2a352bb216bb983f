"""The ``remem`` command line, through its real entry point (``remem.cli.main``) and as a subprocess.

The CLI holds no logic: these tests check that each command reaches the library (real edge store, the shipped
``fake`` embedder, real SQLite) and that the error edge gives one line, the right exit code and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from remem import Memory
from remem.cli import main


@pytest.fixture(autouse=True)
def _fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``remem ARGS`` in-process through the real entry point; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_one_line_error(code: int, out: str, err: str, expected_code: int, fragment: str) -> None:
    assert code == expected_code, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and fragment in lines[0], lines[0]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


MESSAGES = [
    {"role": "user", "content": "I moved to Lisbon in March", "name": "Alice", "id": "m1",
     "timestamp": "2024-03-02T10:00:00Z"},
    {"role": "assistant", "content": "Lisbon is lovely in spring", "name": "Bot", "id": "m2",
     "timestamp": "2024-03-02T10:01:00Z"},
    {"role": "user", "content": "My sister Maya visits in June", "name": "Alice", "id": "m3",
     "timestamp": "2024-06-10T09:00:00Z"},
]


def test_add_text_then_search_json_shows_signals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "add", "-u", "alice", "I love black coffee", "I moved to Lisbon", "-c", "Life")
    assert code == 0, err
    assert "2 added" in out
    run(capsys, "add", "-u", "bob", "Bob loves black coffee too")
    hits = run_json(capsys, "search", "black coffee", "-u", "alice")
    assert isinstance(hits, list) and hits
    assert {h["record"]["user_id"] for h in hits} == {"alice"}
    top = hits[0]
    assert top["record"]["text"] == "I love black coffee"
    assert top["record"]["kind"] == "fact" and top["record"]["categories"] == ["life"]
    assert set(top["signals"]) == {"dense", "bm25"} and top["score"] > 0
    dense_only = run_json(capsys, "search", "black coffee", "-u", "alice", "--mode", "dense", "--limit", "1")
    assert isinstance(dense_only, list) and len(dense_only) == 1 and set(dense_only[0]["signals"]) == {"dense"}


def test_search_table_is_human_readable(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "add", "-u", "alice", "I love black coffee")
    code, out, _ = run(capsys, "search", "coffee", "-u", "alice")
    assert code == 0
    for word in ("score", "dense", "bm25", "kind", "I love black coffee", "fact"):
        assert word in out
    code, out, _ = run(capsys, "search", "nothing like it", "-u", "nobody")
    assert code == 0 and "no memories" in out


def test_add_file_jsonl_makes_episodes_and_dedupes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "msgs.jsonl", MESSAGES)
    code, out, err = run(capsys, "add", "-u", "alice", "--file", str(path), "--session", "s1",
                         "--metadata", '{"source": "chat"}')
    assert code == 0, err
    assert "3 added" in out
    page = run_json(capsys, "list", "-u", "alice", "--oldest-first")
    assert isinstance(page, dict) and page["total"] == 3
    first = page["items"][0]
    assert first["kind"] == "episode" and first["speaker"] == "Alice" and first["source_ids"] == ["m1"]
    assert first["observed_at"].startswith("2024-03-02T10:00:00") and first["session_id"] == "s1"
    assert first["metadata"] == {"source": "chat"}
    again = run_json(capsys, "add", "-u", "alice", "--file", str(path))
    assert isinstance(again, dict) and {e["event"] for e in again["events"]} == {"NOOP"}


def test_context_prints_the_prompt_block_within_the_budget(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "msgs.jsonl", MESSAGES)
    assert run(capsys, "add", "-u", "alice", "--file", str(path), "--session", "s1")[0] == 0
    run(capsys, "add", "-u", "bob", "Bob moved to Lisbon too")
    code, out, err = run(capsys, "context", "-u", "alice", "when did I move to Lisbon", "--max-tokens", "60")
    assert code == 0, err
    assert out.startswith("## Relevant memories\n**2024-03-02 (Sat) · session s1**\n- Alice: I moved to Lisbon")
    assert "Bob" not in out
    from remem.tokens import count_tokens

    assert count_tokens(out.rstrip("\n")) <= 60 and "/60 cl100k_base tokens" in err
    data = run_json(capsys, "context", "-u", "alice", "Maya", "-t", "500", "--since", "2024-06-01")
    assert isinstance(data, dict) and data["max_tokens"] == 500
    assert [r["source_ids"] for i in data["items"] for r in i["records"]] == [["m3"]]
    assert_one_line_error(*run(capsys, "context", "-u", "alice", "x", "--max-tokens", "0"), 2, "max_tokens")
    code, out, err = run(capsys, "context", "-u", "nobody", "anything")
    assert code == 0 and out == "" and "no memories of nobody" in err


def test_add_file_json_object_with_messages(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"messages": MESSAGES[:2]}), encoding="utf-8")
    code, out, _ = run(capsys, "add", "-u", "alice", "-f", str(path))
    assert code == 0 and "2 added" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"role": "user", "content": "ok"}\n\xff\xfe bad bytes\n', "not valid UTF-8"),
        (b'{"role": "user", "content": "ok"}\n{broken\n', "not valid JSON"),
        (b'{"role": "user", "content": "ok"}\n{"role": "user", "content": "   "}\n', "empty"),
    ],
)
def test_bad_message_file_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes,
                                         fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    code, out, err = run(capsys, "add", "-u", "alice", "--file", str(path))
    assert_one_line_error(code, out, err, 2, fragment)
    page = run_json(capsys, "list", "-u", "alice")
    assert isinstance(page, dict) and page["total"] == 0


def test_bad_text_among_arguments_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "add", "-u", "alice", "a good memory", "  ")
    assert_one_line_error(code, out, err, 2, "empty")
    page = run_json(capsys, "list", "-u", "alice")
    assert isinstance(page, dict) and page["total"] == 0


def test_list_pages_and_time_filters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run(capsys, "add", "-u", "alice", "-f", str(write_jsonl(tmp_path / "m.jsonl", MESSAGES)))
    page = run_json(capsys, "list", "-u", "alice", "--limit", "2")
    assert isinstance(page, dict) and len(page["items"]) == 2 and page["next_offset"] == 2
    assert page["items"][0]["source_ids"] == ["m3"]  # newest first
    rest = run_json(capsys, "list", "-u", "alice", "--limit", "2", "--offset", "2")
    assert isinstance(rest, dict) and [r["source_ids"] for r in rest["items"]] == [["m1"]]
    assert rest["next_offset"] is None
    march = run_json(capsys, "list", "-u", "alice", "--since", "2024-03-01", "--until", "2024-03-02")
    assert isinstance(march, dict) and march["total"] == 2  # a bare --until date covers the whole day
    june = run_json(capsys, "search", "sister", "-u", "alice", "--since", "2024-06-01T00:00:00Z")
    assert isinstance(june, list) and [h["record"]["source_ids"] for h in june] == [["m3"]]
    code, out, _ = run(capsys, "list", "-u", "alice", "--limit", "1")
    assert code == 0 and "more: --offset 1" in out


def test_update_delete_restore_history(capsys: pytest.CaptureFixture[str]) -> None:
    added = run_json(capsys, "add", "-u", "alice", "Alice drinks coffee")
    assert isinstance(added, dict)
    memory_id = added["events"][0]["memory_id"]
    code, out, _ = run(capsys, "update", memory_id, "Alice drinks green tea now", "-u", "alice",
                       "--reason", "changed her mind")
    assert code == 0 and "version 2" in out
    shown = run_json(capsys, "show", memory_id, "-u", "alice")
    assert isinstance(shown, dict) and shown["text"] == "Alice drinks green tea now" and shown["id"] == memory_id
    assert run(capsys, "delete", memory_id, "-u", "alice")[0] == 0
    assert run_json(capsys, "search", "tea", "-u", "alice") == []
    trash = run_json(capsys, "list", "-u", "alice", "--deleted")
    assert isinstance(trash, dict) and [r["id"] for r in trash["items"]] == [memory_id]
    assert run(capsys, "restore", memory_id, "-u", "alice")[0] == 0
    events = run_json(capsys, "history", memory_id, "-u", "alice")
    assert isinstance(events, list)
    assert [e["event"] for e in events] == ["ADD", "UPDATE", "DELETE", "RESTORE"]
    assert events[1]["old_text"] == "Alice drinks coffee" and events[1]["reason"] == "changed her mind"
    code, out, _ = run(capsys, "history", memory_id, "-u", "alice")
    assert code == 0 and "UPDATE" in out and "Alice drinks coffee" in out


def test_other_users_ids_are_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    added = run_json(capsys, "add", "-u", "alice", "Alice's secret")
    assert isinstance(added, dict)
    memory_id = added["events"][0]["memory_id"]
    for command in (["show", memory_id], ["delete", memory_id], ["update", memory_id, "hacked"]):
        code, out, err = run(capsys, *command, "-u", "mallory")
        assert_one_line_error(code, out, err, 1, "for user mallory")
    assert run_json(capsys, "show", memory_id, "-u", "alice")["text"] == "Alice's secret"  # type: ignore[index]


def test_forget_user_yes_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "add", "-u", "alice", "one", "two")
    run(capsys, "add", "-u", "bob", "bob's memory")
    code, out, _ = run(capsys, "forget-user", "alice", "--yes")
    assert code == 0 and "2 memories" in out and "2 history events" in out
    assert run_json(capsys, "list", "-u", "alice")["total"] == 0  # type: ignore[index]
    assert run_json(capsys, "list", "-u", "bob")["total"] == 1  # type: ignore[index]


def test_export_import_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    added = run_json(capsys, "add", "-u", "alice", "Alice drinks coffee", "Alice lives in Porto")
    assert isinstance(added, dict)
    memory_id = added["events"][0]["memory_id"]
    run(capsys, "update", memory_id, "Alice drinks tea", "-u", "alice")
    export = tmp_path / "out.jsonl"
    code, out, _ = run(capsys, "export", str(export), "--user", "alice")
    assert code == 0 and "exported 2 memories" in out
    other = tmp_path / "other-home"
    code, out, err = run(capsys, "import", str(export), "--home", str(other))
    assert code == 0, err
    assert "imported 2 memories and 3 history events" in out
    a = run_json(capsys, "list", "-u", "alice")
    b = run_json(capsys, "list", "-u", "alice", "--home", str(other))
    assert a == b
    events = run_json(capsys, "history", memory_id, "-u", "alice", "--home", str(other))
    assert [e["event"] for e in events] == ["ADD", "UPDATE"]  # type: ignore[index,union-attr]
    code, out, err = run(capsys, "import", str(export), "--home", str(other))
    assert code == 0 and "2 already present" in out


def test_import_rejects_non_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"type": "header", "format": "remem-export", "version": 1}\n\xff\n')
    code, out, err = run(capsys, "import", str(path))
    assert_one_line_error(code, out, err, 2, "UTF-8")


def test_stats(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "add", "-u", "alice", "one", "two")
    stats = run_json(capsys, "stats")
    assert isinstance(stats, dict)
    assert (stats["users"], stats["memories"], stats["store"]) == (1, 2, "edge")
    assert stats["embedder"].startswith("fake")
    code, out, _ = run(capsys, "stats")
    assert code == 0 and "history events" in out


@pytest.mark.parametrize(
    ("args", "expected", "fragment"),
    [
        (["search", "x", "-u", "bad user"], 2, "invalid user id"),
        (["show", "not-a-uuid", "-u", "alice"], 2, "invalid memory id"),
        (["show", "00000000-0000-4000-8000-000000000000", "-u", "alice"], 1, "no memory"),
        (["search", "x", "-u", "alice", "--since", "yesterday-ish"], 2, "--since"),
        (["search", "x", "-u", "alice", "--since", "2024-05-01", "--until", "2024-04-01"], 2, "after"),
        (["search", "x", "-u", "alice", "--mode", "psychic"], 2, "--mode"),
        (["search", "x", "-u", "alice", "--limit", "0"], 2, "limit"),
        (["add", "-u", "alice"], 2, "nothing to add"),
        (["add", "-u", "alice", "x", "--metadata", "[1]"], 2, "JSON object"),
        (["search", "-u", "alice"], 2, "Missing argument"),
        (["search", "x", "-u", "alice", "--limit", "many"], 2, "--limit"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_errors_are_one_line_with_exit_code(capsys: pytest.CaptureFixture[str], args: list[str], expected: int,
                                            fragment: str) -> None:
    code, out, err = run(capsys, *args)
    assert_one_line_error(code, out, err, expected, fragment)


def test_embedder_mismatch_is_a_configuration_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "h"
    with Memory(home, embedder="fake:32"):
        pass
    code, out, err = run(capsys, "stats", "--home", str(home))
    assert_one_line_error(code, out, err, 1, "was built with embedder")


def _subprocess(args: list[str], home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEM_HOME": str(home), "REMEM_EMBEDDER": "fake", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "remem.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_script_error_edge_and_debug(tmp_path: Path) -> None:
    plain = _subprocess(["search", "x", "-u", "bad user"], tmp_path / "h")
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr and plain.stderr.strip().startswith("error: invalid user id")
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = _subprocess(["--debug", "search", "x", "-u", "bad user"], tmp_path / "h")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "InvalidUserIdError" in debug.stderr


def test_script_forget_user_asks_first(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert _subprocess(["add", "-u", "alice", "keep me"], home).returncode == 0
    declined = _subprocess(["forget-user", "alice"], home, stdin="n\n")
    assert declined.returncode == 1 and "aborted" in declined.stderr and "Traceback" not in declined.stderr
    listed = _subprocess(["list", "-u", "alice", "--json"], home)
    assert json.loads(listed.stdout)["total"] == 1
    confirmed = _subprocess(["forget-user", "alice"], home, stdin="y\n")
    assert confirmed.returncode == 0 and "1 memories" in confirmed.stdout
    assert json.loads(_subprocess(["list", "-u", "alice", "--json"], home).stdout)["total"] == 0


def test_bulk_add_from_file_in_batches(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"role": "user", "content": f"memory number {i} about topic {i % 7}",
                                      "id": f"t{i}"} for i in range(600)]
    code, out, err = run(capsys, "add", "-u", "alice", "-f", str(write_jsonl(tmp_path / "bulk.jsonl", rows)))
    assert code == 0, err
    assert "600 added" in out
    assert run_json(capsys, "stats")["memories"] == 600  # type: ignore[index]
