"""Hostile input through the Python entry points (``Memory``, ``AsyncMemory``, ``Agent``, import, settings):
each is a :class:`remem.ValidationError` (or ``ConfigurationError``/``ImportFormatError``) naming the field,
never another exception, and nothing is written (store and history unchanged).

The examples of issue 8 come first, verbatim; then a table of other hostile inputs per method.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from remem import (
    AsyncMemory,
    ConfigurationError,
    ImportFormatError,
    Memory,
    MemoryRecord,
    Message,
    RememError,
    ValidationError,
)
from remem.retrieval import SearchOptions
from remem.stores import MemoryFilter

PLUS_ONE = timezone(timedelta(hours=1))
MINUS_FIVE = timezone(timedelta(hours=-5))


def state(m: Memory) -> tuple[list[str], list[str]]:
    """Everything observable: every stored record (all users, live and deleted) and every history event."""
    records = m.store.scroll(MemoryFilter(user_id=None, all_users=True, deleted=None), offset=0, limit=10_000)
    return sorted(r.model_dump_json() for r in records), [e.model_dump_json() for e in m.log.for_user(None)]


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    with Memory(tmp_path_factory.mktemp("hostile") / "home", embedder="fake") as mem:
        mem.add(["I love green tea", "I live in Lisbon"], user_id="alice")
        yield mem


def an_id(m: Memory) -> str:
    return m.list(user_id="alice").items[0].id


def raises_naming(call: Callable[[], Any], field: str, error: type[RememError] = ValidationError) -> RememError:
    with pytest.raises(error) as info:
        call()
    assert info.value.context.get("field") == field, (str(info.value), info.value.context)
    assert str(info.value).startswith(field) or field in str(info.value)
    return info.value


# -- the examples of the issue, verbatim -----------------------------------------------------------------------
def test_lone_surrogate_in_add_is_a_validation_error_naming_the_message(m: Memory) -> None:
    before = state(m)
    err = raises_naming(lambda: m.add("half an emoji \ud83d", user_id="alice"), "message 0 content")
    assert "lone surrogate (U+D83D at position 14)" in str(err)
    raises_naming(lambda: m.add([{"role": "user", "content": "half an emoji \ud83d"}], user_id="alice"),
                  "message 0 content")
    raises_naming(lambda: m.add(["fine", "half an emoji \ud83d"], user_id="alice"), "message 1 content")
    assert state(m) == before


def test_lone_surrogate_in_update_and_search(m: Memory) -> None:
    before = state(m)
    raises_naming(lambda: m.update(an_id(m), "half an emoji \ud83d", user_id="alice"), "text")
    raises_naming(lambda: m.search("half an emoji \ud83d", user_id="alice"), "query")
    assert state(m) == before


def test_timestamp_whose_utc_form_overflows(m: Memory) -> None:
    before = state(m)
    err = raises_naming(lambda: m.add([{"content": "x", "timestamp": "0001-01-01T00:00:00+01:00"}],
                                      user_id="alice"), "message 0 timestamp")
    assert "0001-01-01T00:00:00+01:00 is out of range" in str(err)
    assert state(m) == before


async def test_the_examples_through_async_memory(m: Memory) -> None:
    am = AsyncMemory(sync=m)
    before = state(m)
    for call, field in [
        (am.add("half an emoji \ud83d", user_id="alice"), "message 0 content"),
        (am.update(an_id(m), "half an emoji \ud83d", user_id="alice"), "text"),
        (am.search("half an emoji \ud83d", user_id="alice"), "query"),
        (am.add([{"content": "x", "timestamp": "0001-01-01T00:00:00+01:00"}], user_id="alice"),
         "message 0 timestamp"),
    ]:
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.context["field"] == field
    assert state(m) == before


# -- a table of hostile inputs per method ----------------------------------------------------------------------
def deep(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(n):
        out = {"a": out}
    return out


UID = "00000000-0000-4000-8000-000000000000"
HOSTILE: dict[str, tuple[str, Callable[[Memory], Any]]] = {
    # add: messages
    "None messages": ("messages", lambda m: m.add(None, user_id="alice")),  # type: ignore[arg-type]
    "int messages": ("messages", lambda m: m.add(42, user_id="alice")),  # type: ignore[arg-type]
    "bytes messages": ("messages", lambda m: m.add(b"tea", user_id="alice")),  # type: ignore[arg-type]
    "nested list": ("message 0", lambda m: m.add([["tea"]], user_id="alice")),  # type: ignore[list-item]
    "too many messages": ("messages", lambda m: m.add(["x"] * 10_001, user_id="alice")),
    "surrogate in a Message built without validation": ("message 0 content", lambda m: m.add(
        [Message.model_construct(role="user", content="bad \udc80", name=None, timestamp=None, id=None)],
        user_id="alice")),
    "content None": ("message 0 content", lambda m: m.add([{"content": None}], user_id="alice")),
    "unknown role": ("message 0 role", lambda m: m.add([{"role": "robot", "content": "x"}], user_id="alice")),
    "speaker with ESC": ("message 0 name", lambda m: m.add([{"content": "x", "name": "\x1b[2J"}], user_id="alice")),
    "speaker of 201 chars": ("message 0 name", lambda m: m.add([{"content": "x", "name": "n" * 201}],
                                                              user_id="alice")),
    "message id with surrogate": ("message 0 id", lambda m: m.add([{"content": "x", "id": "\ud800"}],
                                                                  user_id="alice")),
    "timestamp 9999 minus five hours": ("message 0 timestamp", lambda m: m.add(
        [{"content": "x", "timestamp": datetime(9999, 12, 31, 23, tzinfo=MINUS_FIVE)}], user_id="alice")),
    "timestamp as a huge number": ("message 0 timestamp", lambda m: m.add([{"content": "x", "timestamp": 1e30}],
                                                                          user_id="alice")),
    "NUL in text": ("message 0 content", lambda m: m.add("a\x00b", user_id="alice")),
    "user id with a trailing newline": ("user_id", lambda m: m.add("x", user_id="alice\n")),
    "user id with a surrogate": ("user_id", lambda m: m.add("x", user_id="al\udcffice")),
    # add: other arguments
    "metadata NaN": ("metadata.score", lambda m: m.add("x", user_id="alice", metadata={"score": math.nan})),
    "metadata infinity in a list": ("metadata.s[1]", lambda m: m.add("x", user_id="alice",
                                                                      metadata={"s": [1.0, math.inf]})),
    "metadata int beyond 64 bits": ("metadata.n", lambda m: m.add("x", user_id="alice", metadata={"n": 2**64})),
    "metadata key not a string": ("metadata key 1", lambda m: m.add("x", user_id="alice", metadata={1: "a"})),
    "metadata key with a surrogate": ("metadata key '\\ud800'", lambda m: m.add(
        "x", user_id="alice", metadata={"\ud800": 1})),
    "metadata value with a surrogate": ("metadata.k", lambda m: m.add("x", user_id="alice",
                                                                       metadata={"k": "\udfff"})),
    "metadata 9 levels deep": ("metadata.a.a.a.a.a.a.a.a", lambda m: m.add("x", user_id="alice",
                                                                             metadata=deep(9))),
    "metadata 5000 levels deep": ("metadata.a.a.a.a.a.a.a.a", lambda m: m.add("x", user_id="alice",
                                                                                metadata=deep(5000))),
    "metadata too big": ("metadata", lambda m: m.add("x", user_id="alice", metadata={"k": "v" * 20_000})),
    "metadata too many keys": ("metadata", lambda m: m.add("x", user_id="alice",
                                                           metadata={f"k{i}": i for i in range(300)})),
    "metadata a Decimal": ("metadata.d", lambda m: m.add("x", user_id="alice", metadata={"d": Decimal("1.5")})),
    "metadata a list": ("metadata", lambda m: m.add("x", user_id="alice", metadata=[1, 2])),  # type: ignore[arg-type]
    "33 categories": ("categories", lambda m: m.add("x", user_id="alice", categories=[f"c{i}" for i in range(33)])),
    "category with a control character": ("categories[0]", lambda m: m.add("x", user_id="alice",
                                                                          categories=["a\x07"])),
    "category an int": ("categories[0]", lambda m: m.add("x", user_id="alice", categories=[7])),  # type: ignore[list-item]
    "categories an int": ("categories", lambda m: m.add("x", user_id="alice", categories=7)),  # type: ignore[arg-type]
    "session id with a surrogate": ("session_id", lambda m: m.add("x", user_id="alice", session_id="\ud800")),
    "session id empty": ("session_id", lambda m: m.add("x", user_id="alice", session_id="")),
    "infer a string": ("infer", lambda m: m.add("x", user_id="alice", infer="yes")),  # type: ignore[arg-type]
    "actor with a newline": ("actor", lambda m: m.add("x", user_id="alice", actor="a\nb")),
    "progress not callable": ("progress", lambda m: m.add("x", user_id="alice", progress=3)),  # type: ignore[arg-type]
    # add_records
    "record with NaN metadata": ("record 0 metadata.x", lambda m: m.add_records(
        [MemoryRecord.model_construct(**{**MemoryRecord(user_id="alice", text="t").model_dump(),
                                         "metadata": {"x": math.nan}})])),
    "record id not a UUID": ("record 0 id", lambda m: m.add_records([MemoryRecord(id="abc", user_id="alice",
                                                                                  text="t")])),
    "record negative seq": ("record 0 seq", lambda m: m.add_records(
        [MemoryRecord.model_construct(**{**MemoryRecord(user_id="alice", text="t").model_dump(), "seq": -1})])),
    "batch size 0": ("batch_size", lambda m: m.add_records([MemoryRecord(user_id="alice", text="t")],
                                                           batch_size=0)),
    "records not a list": ("records", lambda m: m.add_records("abc")),  # type: ignore[arg-type]
    # update / delete / restore / get / history
    "update observed_at overflow": ("observed_at", lambda m: m.update(
        an_id(m), user_id="alice", observed_at=datetime(1, 1, 1, tzinfo=PLUS_ONE))),
    "update observed_at a string": ("observed_at", lambda m: m.update(
        an_id(m), user_id="alice", observed_at="2024-01-01")),  # type: ignore[arg-type]
    "update metadata NaN": ("metadata.x", lambda m: m.update(an_id(m), user_id="alice", metadata={"x": math.nan})),
    "update reason too long": ("reason", lambda m: m.update(an_id(m), "new", user_id="alice", reason="r" * 501)),
    "update source ids a string": ("source_ids", lambda m: m.update(an_id(m), "new", user_id="alice",
                                                                    source_ids="abc")),
    "update source id with ESC": ("source_ids[0]", lambda m: m.update(an_id(m), "new", user_id="alice",
                                                                      source_ids=["\x1b"])),
    "delete reason with a surrogate": ("reason", lambda m: m.delete(an_id(m), user_id="alice", reason="\ud800")),
    "delete reason an int": ("reason", lambda m: m.delete(an_id(m), user_id="alice", reason=5)),  # type: ignore[arg-type]
    "restore reason NUL": ("reason", lambda m: m.restore(UID, user_id="alice", reason="\x00")),
    "memory id with a surrogate": ("memory_id", lambda m: m.get("\ud800", user_id="alice")),
    "memory id of a megabyte": ("memory_id", lambda m: m.history("a" * 1_000_000, user_id="alice")),
    "include_deleted a string": ("include_deleted", lambda m: m.get(UID, user_id="alice",
                                                                    include_deleted="no")),  # type: ignore[arg-type]
    # list
    "list since overflow": ("since", lambda m: m.list(user_id="alice", since=datetime(1, 1, 1, tzinfo=PLUS_ONE))),
    "list until overflow": ("until", lambda m: m.list(user_id="alice",
                                                      until=datetime(9999, 12, 31, 23, tzinfo=MINUS_FIVE))),
    "list since a string": ("since", lambda m: m.list(user_id="alice", since="2024")),  # type: ignore[arg-type]
    "list offset huge": ("offset", lambda m: m.list(user_id="alice", offset=10**20)),
    "list offset a float": ("offset", lambda m: m.list(user_id="alice", offset=1.5)),  # type: ignore[arg-type]
    "list limit True": ("limit", lambda m: m.list(user_id="alice", limit=True)),
    "list order sideways": ("order", lambda m: m.list(user_id="alice", order="sideways")),  # type: ignore[arg-type]
    "list deleted a string": ("deleted", lambda m: m.list(user_id="alice", deleted="yes")),  # type: ignore[arg-type]
    # search
    "search threshold NaN": ("threshold", lambda m: m.search("tea", user_id="alice", threshold=math.nan)),
    "search threshold 2": ("threshold", lambda m: m.search("tea", user_id="alice", threshold=2.0)),
    "search threshold a string": ("threshold", lambda m: m.search("tea", user_id="alice",
                                                                  threshold="0.5")),  # type: ignore[arg-type]
    "search limit huge": ("limit", lambda m: m.search("tea", user_id="alice", limit=10**20)),
    "search since overflow": ("since", lambda m: m.search("tea", user_id="alice",
                                                          since=datetime(1, 1, 1, tzinfo=PLUS_ONE))),
    "search expand_neighbors huge": ("expand_neighbors", lambda m: m.search("tea", user_id="alice",
                                                                            expand_neighbors=10**9)),
    "search recency infinite": ("recency", lambda m: m.search("tea", user_id="alice", recency=math.inf)),
    "search reference_time overflow": ("reference_time", lambda m: m.search(
        "tea yesterday", user_id="alice", reference_time=datetime(1, 1, 1, tzinfo=PLUS_ONE))),
    "search options not SearchOptions": ("options", lambda m: m.search("tea", user_id="alice",
                                                                      options={"rrf_k": 1})),  # type: ignore[arg-type]
    "search options rrf_k 0": ("rrf_k", lambda m: m.search("tea", user_id="alice", options=SearchOptions(rrf_k=0))),
    "search options NaN weight": ("weights.dense", lambda m: m.search(
        "tea", user_id="alice", options=SearchOptions(weights={"dense": math.nan}))),
    "search query of 1000001 chars": ("query", lambda m: m.search("q" * 1_000_001, user_id="alice")),
    # export / import
    "export to a NUL path": ("path", lambda m: m.export("out\x00.jsonl")),
    "export to a directory": ("path", lambda m: m.export(Path("/tmp"))),
    "export to an int": ("path", lambda m: m.export(5)),  # type: ignore[arg-type]
    "import overwrite a string": ("overwrite", lambda m: m.import_("x.jsonl", overwrite="yes")),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_a_validation_error_naming_the_field(m: Memory, case: str) -> None:
    field, call = HOSTILE[case]
    before = state(m)
    with pytest.raises(ValidationError) as info:
        call(m)
    assert info.value.context.get("field") == field, (str(info.value), info.value.context)
    message = str(info.value)
    assert message.isprintable() and "\n" not in message and len(message) < 400  # safe to print anywhere
    message.encode("utf-8")  # no lone surrogate
    assert state(m) == before


def test_extreme_but_valid_datetimes_work_end_to_end(m: Memory, tmp_path: Path) -> None:
    """Year 1 and year 9999 in UTC are accepted, stored, filtered, exported and imported."""
    low, high = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    added = m.add([{"content": "the oldest", "timestamp": low}, {"content": "the newest", "timestamp": high}],
                  user_id="edges")
    assert [e.event.value for e in added.events] == ["ADD", "ADD"]
    assert [r.text for r in m.list(user_id="edges", since=low, until=low).items] == ["the oldest"]
    assert [r.text for r in m.list(user_id="edges", since=high).items] == ["the newest"]
    # "yesterday" of year 1 and "next year" of 9999 do not exist: the expression is ignored, not an error.
    for query, reference in [("the oldest yesterday", low), ("the newest next year", high)]:
        hits = m.search(query, user_id="edges", reference_time=reference, time_expressions="filter")
        assert sorted(h.record.text for h in hits) == ["the newest", "the oldest"]
    m.export(tmp_path / "edges.jsonl", user_id="edges")
    m.forget_user("edges")
    assert m.import_(tmp_path / "edges.jsonl")["memories"] == 2
    assert sorted(r.observed_at for r in m.list(user_id="edges").items if r.observed_at) == [low, high]
    m.forget_user("edges")


# -- import files ----------------------------------------------------------------------------------------------
def export_lines(m: Memory, tmp_path: Path) -> list[dict[str, Any]]:
    m.export(tmp_path / "good.jsonl", user_id="alice")
    return [json.loads(x) for x in (tmp_path / "good.jsonl").read_text().splitlines()]


def with_record(lines: list[dict[str, Any]], **changes: Any) -> list[bytes]:
    head, first = lines[0], lines[1]
    bad = {"type": "memory", "record": {**first["record"], **changes}}
    return [json.dumps(head).encode(), json.dumps(bad).encode()]


BAD_IMPORT_LINES: dict[str, Callable[[list[dict[str, Any]]], list[bytes]]] = {
    "a text with a lone surrogate escape": lambda ls: [json.dumps(ls[0]).encode(),
                                                       json.dumps({"type": "memory", "record": {
                                                           **ls[1]["record"], "text": "bad \ud800"}}).encode()],
    "metadata NaN literal": lambda ls: [json.dumps(ls[0]).encode(),
                                        json.dumps({"type": "memory", "record": ls[1]["record"]}).encode()
                                        .replace(b'"metadata": {}', b'"metadata": {"x": NaN}')],
    "observed_at overflowing": lambda ls: with_record(ls, observed_at="0001-01-01T00:00:00+01:00"),
    "a speaker with ESC": lambda ls: with_record(ls, speaker="\x1b[31m"),
    "a line over 1 MiB": lambda ls: with_record(ls, text="x " * 600_000),
    "JSON nested 100,000 deep": lambda ls: [json.dumps(ls[0]).encode(), b"[" * 100_000 + b"]" * 100_000],
    "seq beyond 64 bits": lambda ls: with_record(ls, seq=2**70),
    "version 0": lambda ls: with_record(ls, version=0),
}


@pytest.mark.parametrize("case", list(BAD_IMPORT_LINES))
def test_hostile_import_line_names_line_2_and_writes_nothing(m: Memory, tmp_path: Path, case: str) -> None:
    lines = BAD_IMPORT_LINES[case](export_lines(m, tmp_path))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    before = state(m)
    with pytest.raises(ImportFormatError) as info:
        m.import_(path)
    assert info.value.context.get("line") == 2, str(info.value)
    assert state(m) == before


# -- configuration ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("var", "value"), [
    ("REMEM_MAX_TEXT_CHARS", "abc"), ("REMEM_MAX_TEXT_CHARS", "-5"), ("REMEM_MAX_TEXT_CHARS", "1e400"),
    ("REMEM_MAX_TEXT_CHARS", "99999999999999999999999999"), ("REMEM_MAX_TEXT_CHARS", "10000001"),
    ("REMEM_EMBEDDER_DIMENSIONS", "-1"), ("REMEM_EMBEDDER_DIMENSIONS", "10000000"),
    ("REMEM_EMBEDDER", "fake:abc"), ("REMEM_EMBEDDER", "fake:0"), ("REMEM_EMBEDDER", "fake:1000000000"),
    ("REMEM_EMBEDDER", "fake\x1b[2J"), ("REMEM_COLLECTION", "a/b"), ("REMEM_HOME", "/tmp/x\udcff"),
])
def test_bad_setting_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str,
                                              value: str) -> None:
    monkeypatch.setenv(var, value)
    home = None if var == "REMEM_HOME" else tmp_path / "home"
    with pytest.raises(ConfigurationError) as info:
        Memory(home, embedder=None if var == "REMEM_EMBEDDER" else "fake")
    assert var in str(info.value) or "fake" in str(info.value)


@pytest.mark.parametrize(("var", "value"), [("REMEM_MAX_BODY_BYTES", "abc"), ("REMEM_MAX_BODY_BYTES", "1e400"),
                                            ("REMEM_MAX_BODY_BYTES", "-1"), ("REMEM_RATE_LIMIT", "nan"),
                                            ("REMEM_RATE_LIMIT", "inf"), ("REMEM_RATE_BURST", "-3")])
def test_bad_server_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    from remem.server import ServerConfig

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=var):
        ServerConfig.from_env()


# -- the LLM pipeline and the agent ----------------------------------------------------------------------------
def test_pipeline_survives_dates_outside_the_calendar(tmp_path: Path) -> None:
    """A relative date that overflows ("99999999999 years ago") and an LM date whose UTC form does not exist
    fall back to the message time instead of crashing the pipeline."""
    from remem.pipeline import ScriptedLM, react_script

    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [{"text": "Ana is very old", "categories": ["personal_details"],
                                      "date": "0001-01-01T00:00:00+01:00"}]}],
        "UpdateMemory": react_script(("add_memory", {"text": "Ana is very old"}), outputs={"summary": "ADD"}),
    })
    with Memory(tmp_path / "p", embedder="fake", lm=lm) as mem:
        said = datetime(2024, 5, 8, 10, tzinfo=UTC)
        result = mem.add([{"content": "I was born 99999999999 years ago", "timestamp": said, "id": "t1"}],
                         user_id="ana", infer=True)
        assert [(e.event.value, e.text) for e in result.events] == [("ADD", "Ana is very old")]
        (fact,) = mem.list(user_id="ana", kinds=["fact"]).items
        assert fact.observed_at == said and fact.source_ids == ["t1"]


def test_agent_refuses_hostile_turns_before_calling_the_lm(tmp_path: Path) -> None:
    from remem.pipeline import Agent, ScriptedLM

    lm = ScriptedLM([])  # any LM call would raise: the checks come first
    with Memory(tmp_path / "a", embedder="fake", lm=lm) as mem:
        agent = Agent(mem)
        before = state(mem)
        for kwargs, field in [({"text": "half an emoji \ud83d"}, "message"), ({"text": " \u3000 "}, "message"),
                              ({"text": "hi", "session_id": "\x1b"}, "session_id"),
                              ({"text": "hi", "now": datetime(1, 1, 1, tzinfo=PLUS_ONE)}, "now")]:
            with pytest.raises(ValidationError) as info:
                agent.reply("ana", **kwargs)
            assert info.value.context["field"] == field
        assert lm.requests == [] and state(mem) == before
        for bad, field in [({"window": 0}, "window"), ({"max_tool_calls": -1}, "max_tool_calls"),
                           ({"retries": 10**9}, "retries"), ({"core_categories": ["\x00"]}, "core_categories[0]")]:
            with pytest.raises(ValidationError) as info:
                Agent(mem, **bad)
            assert info.value.context["field"] == field


@pytest.mark.parametrize("text", ["\u200b", "\ufeff\u200b\u2060", "\x1b\x07", " \u3000\u2028 ", "\u202e"])
def test_text_of_only_invisible_characters_is_empty(m: Memory, text: str) -> None:
    before = state(m)
    with pytest.raises(ValidationError, match="is empty"):
        m.add(text, user_id="alice")
    assert state(m) == before
