"""Extraction (dspy.Predict(MemoryExtract)) with validation, dates, custom prompts; LM resolution; usage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dspy
import pytest

from remem import ConfigurationError, ExtractionError, Memory, Message
from remem.pipeline import Extractor, ScriptedLM, meter, resolve_lm
from remem.timeexpr import parse_date, resolve_relative

MAY8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("text", "expected"), [
    ("I went there yesterday", "2023-05-07"),
    ("the day before yesterday was fun", "2023-05-06"),
    ("I start tomorrow", "2023-05-09"),
    ("We met 3 days ago", "2023-05-05"),
    ("two weeks ago I ran", "2023-04-24"),
    ("last Friday we hiked", "2023-05-05"),
    ("last Monday we hiked", "2023-05-01"),
    ("last year I moved", "2022-05-08"),
    ("today is great", "2023-05-08"),
])
def test_relative_dates_resolve_against_the_message_time(text: str, expected: str) -> None:
    resolved = resolve_relative(text, MAY8)
    assert resolved is not None and resolved.date().isoformat() == expected


def test_no_relative_date_and_bad_dates() -> None:
    assert resolve_relative("I like tea", MAY8) is None
    assert parse_date("7 May 2023") is None and parse_date("2023-13-01") is None and parse_date(None) is None
    assert parse_date("2023-05-07") == datetime(2023, 5, 7, tzinfo=UTC)


def run_extractor(lm: ScriptedLM, messages: list[Message], **kw: object) -> tuple[list[object], object]:
    extractor = Extractor(**kw)  # type: ignore[arg-type]
    with meter(lm) as m:
        try:
            return list(extractor(messages)), m.usage
        except ExtractionError as exc:
            return [exc], m.usage


def test_host_validates_what_the_model_proposes() -> None:
    lm = ScriptedLM([{"facts": [
        {"text": "  Caroline   adopted a dog ", "categories": ["Possessions", "pets-not-allowed"], "source_ids": ["x9"],
         "date": "last week"},
        {"text": "", "categories": [], "source_ids": []},
        {"text": "Caroline met Mel on 2023-05-01", "categories": ["relationships"], "source_ids": ["D2:1"],
         "date": "2023-05-01"},
    ]}])
    msgs = [Message(content="I adopted a dog yesterday!", id="D2:1", name="Caroline", timestamp=MAY8)]
    facts, usage = run_extractor(lm, msgs)
    assert [(f.text, f.categories, f.source_ids, f.observed_at.date().isoformat())  # type: ignore[attr-defined]
            for f in facts] == [
        ("Caroline adopted a dog", ["possessions"], ["D2:1"], "2023-05-07"),  # bad date → resolved from the turn
        ("Caroline met Mel on 2023-05-01", ["relationships"], ["D2:1"], "2023-05-01"),
    ]
    assert usage.calls == 1 and usage.prompt_tokens > 100  # type: ignore[attr-defined]


def test_wrong_types_are_retried_then_a_typed_error_with_the_raw_output() -> None:
    lm = ScriptedLM([{"facts": "Caroline likes dogs"}, {"facts": {"text": 3}}, "[[ ## facts ## ]]\n[{\"txt\": 1}]"],
                    default="[[ ## facts ## ]]\nnull")
    facts, usage = run_extractor(lm, [Message(content="hi", id="a")], retries=1)
    [err] = facts
    assert isinstance(err, ExtractionError) and err.context["attempts"] == 2
    assert err.raw_output is not None and "facts" in err.raw_output
    assert usage.calls >= 2  # type: ignore[attr-defined]


def test_recovers_when_a_retry_succeeds() -> None:
    lm = ScriptedLM(["not even close", "nope", {"facts": [{"text": "Ana lives in Oslo", "source_ids": ["a"]}]}])
    facts, usage = run_extractor(lm, [Message(content="I live in Oslo", id="a", name="Ana")])
    assert [f.text for f in facts] == ["Ana lives in Oslo"]  # type: ignore[attr-defined]
    assert usage.calls == 3  # type: ignore[attr-defined]  # chat format, JSON fallback, then the retry


def test_instructions_and_categories_are_replaceable() -> None:
    lm = ScriptedLM([{"facts": []}])
    facts, _ = run_extractor(lm, [Message(content="I like pizza", id="a")],
                             instructions="Only extract food preferences of the user.",
                             categories=["food", "drink"])
    assert facts == []
    system, user = lm.requests[0]["system"], lm.requests[0]["user"]
    assert "Only extract food preferences of the user." in system and "atomic, self-contained" not in system
    assert '["food", "drink"]' in user


def test_model_strings() -> None:
    lm = resolve_lm("openai/gpt-4o-mini")
    assert isinstance(lm, dspy.LM) and lm.model == "openai/gpt-4o-mini" and lm.cache is False
    local = resolve_lm("openai/qwen2.5", api_base="http://localhost:8000/v1", api_key="none")
    assert local.kwargs["api_base"] == "http://localhost:8000/v1"
    assert resolve_lm("ollama_chat/llama3.2", api_base="http://localhost:11434").model == "ollama_chat/llama3.2"
    assert resolve_lm(lm) is lm
    with pytest.raises(ConfigurationError, match="no provider prefix"):
        resolve_lm("gpt-4o")
    with pytest.raises(ConfigurationError):
        resolve_lm("gguf:/nonexistent/model.gguf")  # missing extra or missing file: a clear error either way


def test_memory_takes_an_lm_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"routes": {"MemoryExtract": [{"facts": []}]}}))
    monkeypatch.setenv("REMEM_LM", f"scripted:{script}")
    with Memory(tmp_path / "m", embedder="fake") as memory:
        assert memory.pipeline is not None
        result = memory.add("hello", user_id="alice", infer=True)
        assert result.events == [] and result.usage.calls == 1
    monkeypatch.delenv("REMEM_LM")
    with Memory(tmp_path / "m", embedder="fake") as memory:
        assert memory.pipeline is None
        with pytest.raises(ConfigurationError):
            memory.add("hello", user_id="alice", infer=True)
    with pytest.raises(ConfigurationError):  # a bad LM releases the store: the directory stays usable
        Memory(tmp_path / "m", embedder="fake", lm="no-prefix")
    Memory(tmp_path / "m", embedder="fake").close()
