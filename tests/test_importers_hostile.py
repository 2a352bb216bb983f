"""Importers on hostile and odd files (review 2, issue 14): every malformed input is an ``ImportFormatError`` that
names its position and writes nothing; size and nesting are bounded before parsing; repeated conversations and
tool calls are skipped with a reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remem import ImportFormatError, Memory, ValidationError
from remem.importers import MAX_IMPORT_BYTES, import_export
from remem.importers.jsonfile import MAX_IMPORT_NESTING, nesting_offset


def chatgpt_message(mid: str, text: str = "hello", *, role: str = "user", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "author": {"role": role}, "create_time": 1714557600.0,
            "content": {"content_type": "text", "parts": [text]}, "recipient": "all", **extra}


def chatgpt(*messages: dict[str, Any], conv_id: str = "c1", **extra: Any) -> dict[str, Any]:
    mapping = {m["id"]: {"id": m["id"], "message": m, "parent": None, "children": []} for m in messages}
    return {"id": conv_id, "title": "t", "create_time": 1714557600.0, "mapping": mapping, **extra}


def claude(*texts: str, conv_id: str = "k1", created_at: Any = "2024-06-01T12:00:00Z") -> dict[str, Any]:
    return {"uuid": conv_id, "name": "n", "created_at": "2024-06-01T12:00:00Z",
            "chat_messages": [{"uuid": f"m{i}", "sender": "human", "created_at": created_at,
                               "content": [{"type": "text", "text": t}]} for i, t in enumerate(texts)]}


def imported(memory: Memory, file: Path, source: str, **kw: Any) -> Any:
    return import_export(memory, file, source, user_id=None if source == "mem0" else "alice", **kw)  # type: ignore[arg-type]


HOSTILE = [
    # create_time that no datetime holds: was a bare OverflowError / ValueError (exit 1)
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m", create_time=1e20))]),
     r"\$\[0\]\.mapping\.m\.message\.create_time: Value error, create_time 1e\+20 is not a time"),
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m", create_time=-1e12))]),
     r"\$\[0\]\.mapping\.m\.message\.create_time: Value error, create_time -1000000000000\.0 is not a time"),
    ("chatgpt", '[{"id": "c", "create_time": NaN, "mapping": {}}]', r"\$\[0\]\.create_time: .*nan is not a time"),
    # unstorable text and labels: were a pydantic error (exit 1) or an error without the JSON path
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m", "ok"), chatgpt_message("n", "bad \ud800 text"))]),
     r"\$\[0\]\.mapping\.n\.message\.content\.parts\[0\]: Value error, parts contains a lone surrogate"),
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m", "nul \u0000 here"))]),
     r"\$\[0\]\.mapping\.m\.message\.content\.parts\[0\]: Value error, parts contains a NUL character"),
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m\u0000"))]),
     r'\$\[0\]\.mapping\["m\\u0000"\]\.message\.id: Value error, id contains a NUL character'),
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m"), conv_id="c\ud800")]),
     r"\$\[0\]\.id: Value error, id contains a lone surrogate"),
    ("chatgpt", json.dumps([chatgpt({**chatgpt_message("m"), "author": {"role": "user", "name": "x" * 300}})]),
     r"\$\[0\]\.mapping\.m\.message\.author\.name: Value error, name has 300 characters"),
    ("chatgpt", json.dumps([chatgpt(chatgpt_message("m", metadata={"model_slug": 7}))]),
     r"\$\[0\]\.mapping\.m\.message\.metadata\.model_slug: must be a string"),
    ("claude", json.dumps([claude("ok", "bad \ud800")]),
     r"\$\[0\]\.chat_messages\[1\]\.content\[0\]\.text: Value error, text contains a lone surrogate"),
    ("claude", json.dumps([claude("ok", created_at="0001-01-01T00:00:00+05:00")]),
     r"\$\[0\]\.chat_messages\[0\]\.created_at: Value error, created_at 0001-01-01T00:00:00\+05:00 is out of range"),
    ("claude", json.dumps([claude("ok", created_at=1700000000)]),
     r"\$\[0\]\.chat_messages\[0\]\.created_at: Value error, created_at must be an ISO 8601 date"),
    ("mem0", json.dumps([{"id": "a", "memory": "ok", "user_id": "u"}, {"id": "b", "memory": "x\u0000", "user_id": "u"}]),
     r"\$\[1\]\.memory: Value error, memory contains a NUL character"),
    ("mem0", '[{"id": "a", "memory": "ok", "user_id": "u", "metadata": {"score": NaN}}]',
     r"\$\[0\]: metadata.score is nan: JSON has no NaN"),
    ("mem0", json.dumps([{"id": "a", "memory": "ok", "user_id": "u", "created_at": "9999-12-31T23:00:00-05:00"}]),
     r"\$\[0\]\.created_at: Value error, created_at 9999-12-31T23:00:00-05:00 is out of range"),
    # nesting beyond the bound, refused before parsing: was a RecursionError (exit 1)
    ("chatgpt", "[" * 200_000, rf":1:{MAX_IMPORT_NESTING + 1}: JSON nested more than {MAX_IMPORT_NESTING} levels"),
    ("claude", '[\n  ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "]",
     rf":2:{3 + 6 * (MAX_IMPORT_NESTING - 1)}: JSON nested more than {MAX_IMPORT_NESTING} levels"),
    ("mem0", '{"results": ' + "[" * 100 + "]" * 100 + "}", r":1:\d+: JSON nested more than 64 levels"),
]


@pytest.mark.parametrize(("source", "content", "message"), HOSTILE)
def test_hostile_files_are_a_format_error_at_their_position(fake_memory: Memory, tmp_path: Path, source: str,
                                                            content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(ImportFormatError, match=message) as caught:
        imported(fake_memory, bad, source)
    assert isinstance(caught.value, ValidationError)
    assert "\ud800" not in str(caught.value) and "\x00" not in str(caught.value)  # safe to print
    assert fake_memory.stats().memories == 0 and fake_memory.users() == []


def test_brackets_inside_strings_and_escaped_quotes_are_text(fake_memory: Memory, tmp_path: Path) -> None:
    text = 'deep [[[{{{ ' * 50 + 'a \\"quoted\\" [ and a backslash \\\\'
    file = tmp_path / "ok.json"
    file.write_text(json.dumps([chatgpt(chatgpt_message("m", text))]))
    assert imported(fake_memory, file, "chatgpt").imported == 1
    assert fake_memory.list(user_id="alice").items[0].text == text


@pytest.mark.parametrize(("raw", "limit", "expected"), [
    (b"[[[]]]", 3, None), (b"[[[[]]]]", 3, 3), (b'["[[[[", {"a": "\\"[[[["}]', 2, None),
    (b'["\\\\", [[[]]]]', 3, 9),  # an escaped backslash does not escape the closing quote
    (b'["\\\\\\"[[[[[["]', 2, None),  # \\\" is a backslash and an escaped quote: still inside the string
    (b'["' + b"\\" * 71 + b'"[[["]', 1, None),  # a run longer than 64 (counted in one pass): odd, escaped
    (b'["' + b"\\" * 70 + b'", [[]]]', 2, 2 + 70 + 3 + 1),  # even: the string ends
])
def test_nesting_offset(raw: bytes, limit: int, expected: int | None) -> None:
    assert nesting_offset(raw, limit) == expected


def reference_nesting_offset(raw: bytes, limit: int) -> int | None:
    """The byte-at-a-time scan the vectorised one must agree with."""
    depth, in_string, escaped = 0, False, False
    for i, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return i
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return None


STRING = st.lists(st.sampled_from([b"a", b"[", b"{", b"]", b"}", b"\\\\", b'\\"', b"\\\\" * 35]), max_size=8).map(
    lambda body: b'"' + b"".join(body) + b'"')


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([b"[", b"{", b"]", b"}", b"a"]), STRING), max_size=200),
       st.integers(min_value=0, max_value=6))
def test_nesting_offset_agrees_with_a_byte_scan(pieces: list[bytes], limit: int) -> None:
    """Backslashes only inside strings, as in any JSON (escaped quotes and backslashes, runs longer than 64)."""
    raw = b"".join(pieces)
    assert nesting_offset(raw, limit) == reference_nesting_offset(raw, limit)


def test_nesting_offset_across_chunks() -> None:
    # a string opened in one 1 MiB chunk and closed in the next hides its brackets; the depth carries over
    raw = b'[["' + b"[" * (1 << 20) + b'", ' + b"[" * 70 + b"]" * 70 + b"]]"
    assert nesting_offset(raw, 64) == len(raw) - 140 - 2 + 62
    assert nesting_offset(raw, 72) is None


# -- repeated conversations and tool calls -----------------------------------------------------------------------
def test_a_conversation_twice_in_a_file_is_imported_once(fake_memory: Memory, tmp_path: Path) -> None:
    conv = chatgpt(chatgpt_message("m1", "I live in Porto"), chatgpt_message("m2", "ok", role="assistant"))
    file = tmp_path / "twice.json"
    file.write_text(json.dumps([conv, chatgpt(chatgpt_message("x", "other"), conv_id="c2"), conv]))
    summary = imported(fake_memory, file, "chatgpt")
    assert (summary.imported, summary.conversations) == (3, 2)
    assert [(s.where, s.reason) for s in summary.skipped] == [("$[2]", "duplicate conversation")]
    twice = tmp_path / "claude.json"
    twice.write_text(json.dumps([claude("hello", conv_id="k"), claude("hello", conv_id="k")]))
    summary = imported(fake_memory, twice, "claude")
    assert (summary.imported, summary.conversations, summary.skipped_by_reason) == (
        1, 1, {"duplicate conversation": 1})


def test_chatgpt_tool_calls_are_not_stored(fake_memory: Memory, tmp_path: Path) -> None:
    code = {**chatgpt_message("py", role="assistant", recipient="python"),
            "content": {"content_type": "code", "language": "python", "text": "import pandas as pd"}}
    dalle = chatgpt_message("img", '{"prompt": "a cat", "size": "1024x1024"}', role="assistant",
                            recipient="dalle.text2im")
    browse = chatgpt_message("web", "search('weather Lisbon')", role="assistant", recipient="browser")
    shown = {**chatgpt_message("shown", role="assistant"),
             "content": {"content_type": "code", "language": "python", "text": "print(1)"}}
    file = tmp_path / "tools.json"
    file.write_text(json.dumps([chatgpt(chatgpt_message("u", "plot this"), code, dalle, browse, shown,
                                        chatgpt_message("a", "Here is the plot.", role="assistant"))]))
    summary = imported(fake_memory, file, "chatgpt")
    assert summary.skipped_by_reason == {"tool call": 3}
    assert sorted(r.text for r in fake_memory.list(user_id="alice").items) == [
        "Here is the plot.", "plot this", "print(1)"]


# -- size bounds -------------------------------------------------------------------------------------------------
def test_default_size_limit_is_256_mib() -> None:
    assert MAX_IMPORT_BYTES == 256 * 1024 * 1024


def test_a_zip_bomb_is_stopped_at_the_size_limit(fake_memory: Memory, tmp_path: Path) -> None:
    bomb = tmp_path / "export.zip"
    body = b"[" + b" " * (20 << 20) + b"]"  # 20 MiB of JSON that deflates to ~20 KiB
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("conversations.json", body)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImportFormatError, match=r"export\.zip:conversations\.json: more than 1,048,576 bytes of "
                                                r"JSON, the import limit \(raise it with --max-bytes"):
        imported(fake_memory, bomb, "chatgpt", max_bytes=1 << 20)
    assert imported(fake_memory, bomb, "chatgpt", max_bytes=21 << 20).imported == 0  # within the limit: read


def test_a_zip_whose_header_lies_is_still_bounded(fake_memory: Memory, tmp_path: Path) -> None:
    """A member whose header claims 100 bytes but inflates to 2 MiB: zipfile stops at the claimed size and the
    truncated member fails its CRC check, so nothing beyond the limit is ever held."""
    archive = tmp_path / "lie.zip"
    body = b"[" + b" " * (2 << 20) + b"]"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("conversations.json", body)
    data = bytearray(archive.read_bytes())
    size = len(body).to_bytes(4, "little")
    for at in [i for i in range(len(data) - 3) if data[i:i + 4] == size]:
        data[at:at + 4] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(ImportFormatError, match=r"lie\.zip: not a readable zip archive"):
        imported(fake_memory, archive, "chatgpt", max_bytes=1 << 20)


def test_a_plain_file_over_the_limit_and_a_broken_zip(fake_memory: Memory, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text("[" + " " * 2000 + "]")
    with pytest.raises(ImportFormatError, match=r"big\.json: more than 1,000 bytes of JSON"):
        imported(fake_memory, big, "mem0", max_bytes=1000)
    assert imported(fake_memory, big, "mem0", max_bytes=2002).imported == 0
    with pytest.raises(ValidationError, match="max_bytes must be an integer between 1 and"):
        imported(fake_memory, big, "mem0", max_bytes=0)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("conversations.json", "[]")
    data = broken.read_bytes()
    broken.write_bytes(data[:30] + b"\xff" * 4 + data[34:])  # the member's bytes no longer match its CRC
    with pytest.raises(ImportFormatError, match=r"broken\.zip: not a readable zip archive"):
        imported(fake_memory, broken, "claude")
