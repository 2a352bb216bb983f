"""Bad input -> a clear RememError subclass, and nothing written (store and history unchanged)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from remem import (
    ConfigurationError,
    ImportFormatError,
    InvalidUserIdError,
    Memory,
    NotFoundError,
    RememError,
    ValidationError,
)
from remem.stores import MemoryFilter

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def state(m: Memory) -> tuple[list[str], list[tuple[str | None, str]]]:
    """Everything observable: every stored record (all users, live and deleted) and every history event."""
    records = m.store.scroll(MemoryFilter(user_id=None, all_users=True, deleted=None), offset=0, limit=10_000)
    events = m.log.for_user(None)
    return sorted(r.model_dump_json() for r in records), [(e.memory_id, e.model_dump_json()) for e in events]


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    """One memory for the module (every test checks it is left unchanged, so they can share it)."""
    with Memory(tmp_path_factory.mktemp("validation") / "home", embedder="fake") as mem:
        mem.add(["I love green tea", "I live in Lisbon"], user_id="alice")
        (mid,) = [e.memory_id for e in mem.add("bob was here", user_id="bob").added]
        mem.delete(mid or "", user_id="bob")
        yield mem


def alice_id(m: Memory) -> str:
    return m.list(user_id="alice").items[0].id


BAD_CALLS: dict[str, tuple[type[RememError], Callable[[Memory], Any]]] = {
    "empty text": (ValidationError, lambda m: m.add("", user_id="alice")),
    "whitespace text": (ValidationError, lambda m: m.add(" \n\t ", user_id="alice")),
    "empty list": (ValidationError, lambda m: m.add([], user_id="alice")),
    "one bad message in a batch": (ValidationError, lambda m: m.add(["fine", "  "], user_id="alice")),
    "oversized text": (ValidationError, lambda m: m.add("x" * 1_000_001, user_id="alice")),
    "NUL in text": (ValidationError, lambda m: m.add("a\x00b", user_id="alice")),
    "non-str text": (ValidationError, lambda m: m.add([b"bytes"], user_id="alice")),  # type: ignore[list-item]
    "bad message dict": (ValidationError, lambda m: m.add({"role": "robot", "content": "x"}, user_id="alice")),
    "metadata not JSON": (ValidationError, lambda m: m.add("x", user_id="alice", metadata={"k": object()})),
    "bad category": (ValidationError, lambda m: m.add("x", user_id="alice", categories=[""])),
    "empty user id": (InvalidUserIdError, lambda m: m.add("x", user_id="")),
    "user id with spaces": (InvalidUserIdError, lambda m: m.add("x", user_id="alice smith")),
    "user id of 200 chars": (InvalidUserIdError, lambda m: m.add("x", user_id="a" * 200)),
    "non-str user id": (InvalidUserIdError, lambda m: m.add("x", user_id=42)),  # type: ignore[arg-type]
    "None user id": (InvalidUserIdError, lambda m: m.search("x", user_id=None)),  # type: ignore[arg-type]
    "user id with a slash": (InvalidUserIdError, lambda m: m.list(user_id="../etc")),
    "update to empty": (ValidationError, lambda m: m.update(alice_id(m), "   ", user_id="alice")),
    "update oversized": (ValidationError, lambda m: m.update(alice_id(m), "y" * 1_000_001, user_id="alice")),
    "update unknown id": (NotFoundError, lambda m: m.update(UNKNOWN_ID, "new", user_id="alice")),
    "delete unknown id": (NotFoundError, lambda m: m.delete(UNKNOWN_ID, user_id="alice")),
    "restore unknown id": (NotFoundError, lambda m: m.restore(UNKNOWN_ID, user_id="alice")),
    "restore a live memory": (NotFoundError, lambda m: m.restore(alice_id(m), user_id="alice")),
    "get unknown id": (NotFoundError, lambda m: m.get(UNKNOWN_ID, user_id="alice")),
    "history unknown id": (NotFoundError, lambda m: m.history(UNKNOWN_ID, user_id="alice")),
    "malformed id": (RememError, lambda m: m.get("not-a-uuid", user_id="alice")),
    "malformed id delete": (RememError, lambda m: m.delete("12", user_id="alice")),
    "malformed id history": (RememError, lambda m: m.history("../../etc", user_id="alice")),
    "non-str id": (ValidationError, lambda m: m.update(42, "x", user_id="alice")),  # type: ignore[arg-type]
    "search empty query": (ValidationError, lambda m: m.search("  ", user_id="alice")),
    "search limit 0": (ValidationError, lambda m: m.search("tea", user_id="alice", limit=0)),
    "search bad mode": (ValidationError, lambda m: m.search("tea", user_id="alice", mode="magic")),  # type: ignore[arg-type]
    "since after until": (ValidationError, lambda m: m.list(
        user_id="alice", since=__import__("datetime").datetime(2024, 2, 1),
        until=__import__("datetime").datetime(2024, 1, 1))),
    "negative offset": (ValidationError, lambda m: m.list(user_id="alice", offset=-1)),
    "kinds as a string": (ValidationError, lambda m: m.list(user_id="alice", kinds="fact")),  # type: ignore[arg-type]
    "unknown kind": (ValidationError, lambda m: m.list(user_id="alice", kinds=["opinion"])),  # type: ignore[list-item]
    "search kinds as a string": (ValidationError, lambda m: m.search("tea", user_id="alice", kinds="fact")),  # type: ignore[arg-type]
    "search unknown kind": (ValidationError, lambda m: m.search("tea", user_id="alice", kinds=["opinion"])),  # type: ignore[list-item]
    "forget bad user": (InvalidUserIdError, lambda m: m.forget_user("")),
    "infer without an LM": (RememError, lambda m: m.add("x", user_id="alice", infer=True)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_and_writes_nothing(m: Memory, case: str) -> None:
    error, call = BAD_CALLS[case]
    before = state(m)
    with pytest.raises(error) as info:
        call(m)
    assert isinstance(info.value, RememError)
    assert str(info.value)  # a clear, non-empty message
    assert state(m) == before


def test_error_carries_context(m: Memory) -> None:
    with pytest.raises(ValidationError) as info:
        m.add("z" * 1_000_001, user_id="alice")
    assert info.value.context == {"length": 1_000_001, "limit": 1_000_000, "field": "message 0 content"}
    assert info.value.code == "invalid_input"
    with pytest.raises(InvalidUserIdError) as uid:
        m.add("x", user_id="has space")
    assert uid.value.context["user_id"] == "'has space'"


def test_max_text_chars_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_MAX_TEXT_CHARS", "10")
    with Memory(tmp_path / "small", embedder="fake") as small:
        assert small.add("0123456789", user_id="u").added
        with pytest.raises(ValidationError):
            small.add("0123456789A", user_id="u")


def test_uppercase_memory_id_finds_the_memory(m: Memory) -> None:
    mid = alice_id(m)
    assert m.get(mid.upper(), user_id="alice").id == mid
    assert m.history(mid.upper(), user_id="alice")[0].memory_id == mid


# -- import files --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The lines of a real export of a fresh user (so every other line in it is importable)."""
    base = tmp_path_factory.mktemp("export")
    with Memory(base / "src", embedder="fake") as src:
        src.add(["carol likes jazz", "carol has two dogs", "carol runs marathons"], user_id="carol")
        src.export(base / "good.jsonl")
    lines = (base / "good.jsonl").read_bytes().splitlines()
    assert len(lines) == 1 + 3 + 3
    return lines


def bad_file(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


BAD_FILES: dict[str, Callable[[list[bytes]], tuple[list[bytes], int | None]]] = {
    # name -> (lines -> (bad lines, the line number the error must name))
    "non-UTF-8 bytes": lambda ls: (ls[:1] + [ls[1].replace(b"jazz", b"j\xff\xfezz")] + ls[2:], 2),
    "latin-1 file": lambda ls: ([x.replace(b"dogs", "döğs".encode("latin-1", "replace")) for x in ls], 3),
    "malformed JSON line": lambda ls: (ls[:4] + [b'{"type": "memory", "record": '] + ls[4:], 5),
    "bad line in the middle": lambda ls: (ls[:3] + [b'{"type": "memory", "record": {"text": "no user"}}'] + ls[3:],
                                          4),
    "unknown line type": lambda ls: (ls[:2] + [b'{"type": "vector", "data": []}'] + ls[2:], 3),
    "not an object": lambda ls: (ls[:2] + [b"[1, 2, 3]"] + ls[2:], 3),
    "missing header": lambda ls: (ls[1:], 1),
    "blank line then no header": lambda ls: ([b""] + ls[1:], 2),
    "wrong version": lambda ls: ([ls[0].replace(b'"version": 1', b'"version": 99')] + ls[1:], 1),
    "empty file": lambda ls: ([], None),
    "bad user id in a record": lambda ls: (ls[:2] + [ls[2].replace(b'"user_id": "carol"', b'"user_id": "c a"')]
                                           + ls[3:], 3),
    "empty text in a record": lambda ls: (ls[:1] + [json.dumps(
        {"type": "memory", "record": {**json.loads(ls[1])["record"], "text": "  "}}).encode()] + ls[2:], 2),
    "oversized text in a record": lambda ls: (ls[:1] + [json.dumps(
        {"type": "memory", "record": {**json.loads(ls[1])["record"], "text": "x" * 1_000_001}}).encode()] + ls[2:], 2),
    "duplicate memory id": lambda ls: (ls[:2] + [ls[1]] + ls[2:], 3),
    "event of another user": lambda ls: (ls[:-1] + [ls[-1].replace(b'"user_id": "carol"', b'"user_id": "mallory"')],
                                         7),
    "bad event": lambda ls: (ls + [b'{"type": "event", "event": {"event": "EXPLODE"}}'], 8),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_import_file_raises_with_line_and_writes_nothing(
    m: Memory, good_lines: list[bytes], tmp_path: Path, case: str
) -> None:
    lines, line_no = BAD_FILES[case](good_lines)
    path = bad_file(tmp_path, lines)
    before = state(m)
    with pytest.raises(ImportFormatError) as info:
        m.import_(path)
    if line_no is not None:
        assert info.value.context.get("line") == line_no, str(info.value)
        assert f":{line_no}:" in str(info.value)
    assert state(m) == before
    assert m.list(user_id="carol", deleted=None).total == 0


def test_the_fixture_file_itself_imports(fake_memory: Memory, good_lines: list[bytes], tmp_path: Path) -> None:
    """The good file used above is importable: the failures above come from the one bad line."""
    path = bad_file(tmp_path, good_lines)
    assert fake_memory.import_(path) == {"memories": 3, "events": 3, "skipped": 0}
    assert fake_memory.list(user_id="carol").total == 3


def test_missing_import_file(m: Memory, tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError):
        m.import_(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(("var", "value"), [("REMEM_MAX_TEXT_CHARS", "lots"), ("REMEM_MAX_TEXT_CHARS", "0"),
                                            ("REMEM_EMBEDDER_DIMENSIONS", "wide")])
def test_bad_configuration_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=var):
        Memory(tmp_path / "home", embedder="fake")
    assert not (tmp_path / "home").exists()  # refused before anything was created
