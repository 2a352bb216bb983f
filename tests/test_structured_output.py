"""Structured output at the HTTP transport level: each provider's request carries the JSON schema, a reply that
violates it is retried and then queued, a server that refuses the schema gets the chat format.

The server is a real HTTP server on 127.0.0.1 (:mod:`remem.testing.llm_server`): DSPy 3.4 reaches OpenAI,
OpenAI-compatible servers and Ollama with its own socket transport (respx/httpx mocks would not see it), so a
loopback server is how to see the exact request on the provider's real path. No network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remem import EventType, ExtractionError, Memory, Message
from remem.pipeline import Pipeline, ScriptedLM, plan_output
from remem.pipeline.llama import LlamaCppEngine, engine_lm, llama_response_format
from remem.pipeline.lm import ollama_base, resolve_lm
from remem.pipeline.structured import ChatFormat, SchemaFormat, adapter_for
from remem.testing.llm_server import FakeLLMServer, RecordedRequest, chat_reply, error_reply

FACT = {"text": "Alice likes green tea", "categories": ["preferences"], "source_ids": ["t1"], "date": None}
GOOD = chat_reply(json.dumps({"facts": [FACT]}))


@pytest.fixture
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Memory]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with Memory(tmp_path / "m", embedder="fake") as m:
        yield m


def schema_of(request: RecordedRequest) -> dict[str, Any]:
    fmt = request.body["response_format"]
    assert fmt["type"] == "json_schema", fmt
    return dict(fmt["json_schema"]["schema"])


def turn() -> list[Message]:
    return [Message(content="I like green tea", id="t1", name="Alice")]


@pytest.mark.parametrize(("model", "suffix", "path"), [
    ("openai/gpt-4o-mini", "/v1", "/v1/chat/completions"),      # OpenAI (DSPy's catalog: schema-capable)
    ("openai/qwen2.5-7b", "/v1", "/v1/chat/completions"),       # vLLM / llama.cpp server / LM Studio
    ("hosted_vllm/qwen2.5-7b", "/v1", "/v1/chat/completions"),  # vLLM by name
    ("ollama_chat/llama3.2", "", "/v1/chat/completions"),       # Ollama: a bare address gets /v1
    ("ollama/llama3.2", "/v1", "/v1/chat/completions"),
])
def test_each_provider_request_carries_the_extraction_schema(memory: Memory, model: str, suffix: str,
                                                             path: str) -> None:
    with FakeLLMServer([GOOD]) as server:
        pipeline = Pipeline(memory, model, api_base=server.url + suffix)
        assert isinstance(pipeline.adapter, SchemaFormat)
        result = memory.add(turn(), user_id="alice", infer=True)
    [request] = server.requests
    assert request.path == path
    schema = schema_of(request)
    assert schema["required"] == ["facts"] and schema["additionalProperties"] is False
    item = schema["$defs"]["ExtractedFact"]
    assert sorted(item["properties"]) == ["categories", "date", "source_ids", "text"]
    assert item["additionalProperties"] is False and sorted(item["required"]) == sorted(item["properties"])
    assert [(e.event, e.text) for e in result.events] == [(EventType.ADD, "Alice likes green tea")]
    assert result.usage.calls == 1 and result.usage.prompt_tokens == 100 and result.usage.completion_tokens == 20


def test_ollama_through_litellm_gets_the_schema_as_its_format(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``OLLAMA_API_BASE`` set, DSPy routes ``ollama/…`` through LiteLLM, which speaks Ollama's own API:
    the schema goes as Ollama's ``format``."""

    def ollama(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if request.path == "/api/show":
            return 200, {"modelfile": "", "parameters": "", "template": "", "details": {}, "model_info": {},
                         "capabilities": ["completion"]}
        return 200, {"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z", "response": json.dumps(
            {"facts": [FACT]}), "done": True, "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5}

    with FakeLLMServer([ollama]) as server:
        monkeypatch.setenv("OLLAMA_API_BASE", server.url)
        Pipeline(memory, "ollama/llama3.2")
        result = memory.add(turn(), user_id="alice", infer=True)
    [generate] = [r for r in server.requests if r.path == "/api/generate"]
    assert generate.body["format"]["required"] == ["facts"]
    assert generate.body["format"]["$defs"]["ExtractedFact"]["additionalProperties"] is False
    assert [e.text for e in result.events] == ["Alice likes green tea"] and result.usage.calls == 1


def test_a_reply_violating_the_schema_is_retried_then_the_turn_stays_queued(memory: Memory) -> None:
    bad = [chat_reply("Sure! Alice likes green tea."), chat_reply(json.dumps({"facts": "Alice likes tea"})),
           chat_reply(json.dumps({"memories": []}))]
    with FakeLLMServer(bad) as server:
        Pipeline(memory, "hosted_vllm/qwen2.5-7b", api_base=server.url + "/v1")
        with pytest.raises(ExtractionError) as info:
            memory.add(turn(), user_id="alice", infer=True)
    assert len(server.requests) == 3 and all("response_format" in r.body for r in server.requests)
    err = info.value
    assert err.context["attempts"] == 3 and err.context["usage"]["calls"] == 3
    assert "memories" in (err.raw_output or "")
    [job] = memory.pipeline.queue.pending()
    assert job.id == err.context["job_id"] and job.attempts == 1 and job.raw_output == err.raw_output
    assert [r.text for r in memory.list(user_id="alice").items] == ["I like green tea"]  # the episode is kept
    with FakeLLMServer([GOOD]) as server:  # reprocess with a server that behaves
        Pipeline(memory, "hosted_vllm/qwen2.5-7b", api_base=server.url + "/v1")
        assert memory.pipeline.reprocess().failed == []
    assert [r.text for r in memory.list(user_id="alice", kinds=["fact"]).items] == ["Alice likes green tea"]


def test_a_server_that_refuses_the_schema_gets_the_chat_format(memory: Memory) -> None:
    chat = "[[ ## facts ## ]]\n" + json.dumps([FACT]) + "\n\n[[ ## completed ## ]]"
    replies = [error_reply(400, "response_format is not supported by this server", "response_format"),
               chat_reply(chat), chat_reply(chat.replace("green tea", "black tea"))]
    with FakeLLMServer(replies) as server:
        pipeline = Pipeline(memory, "openai/local-model", api_base=server.url + "/v1")
        first = memory.add(turn(), user_id="alice", infer=True)
        second = memory.add([Message(content="and black tea", id="t2")], user_id="bob", infer=True)
    assert [r.body.get("response_format") is not None for r in server.requests] == [True, False, False]
    assert isinstance(pipeline.adapter, SchemaFormat) and pipeline.adapter.refused
    assert [e.text for e in first.events] == ["Alice likes green tea"] and first.usage.calls == 2
    assert [e.text for e in second.events] == ["Alice likes black tea"] and second.usage.calls == 1


def test_the_agent_step_asks_for_a_json_object(memory: Memory) -> None:
    memory.add("Alice likes black tea", user_id="alice", categories=["preferences"])
    step = {"next_thought": "update", "next_tool_name": "update_memory",
            "next_tool_args": {"id": 0, "new_text": "Alice likes green tea"}}
    done = {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
    with FakeLLMServer([GOOD, chat_reply(json.dumps(step)), chat_reply(json.dumps(done))]) as server:
        Pipeline(memory, "ollama_chat/llama3.2", api_base=server.url, conflict_floor=0.3)
        result = memory.add(turn(), user_id="alice", infer=True)
    assert [e.event for e in result.events] == [EventType.UPDATE]
    formats = [r.body.get("response_format") for r in server.requests]
    assert formats[0]["type"] == "json_schema"
    assert formats[1:] == [{"type": "json_object"}] * 2  # next_tool_args is an open mapping: JSON mode


def test_plans_per_provider() -> None:
    assert plan_output(resolve_lm("anthropic/claude-3-5-sonnet-20240620", api_key="x")).mode == "chat"
    assert plan_output(resolve_lm("openai/gpt-4o-mini", api_key="x")).mode == "json"
    assert plan_output(ScriptedLM([])).mode == "chat"
    assert isinstance(adapter_for(ScriptedLM([])), ChatFormat) and isinstance(adapter_for(ScriptedLM([]), "json"),
                                                                           SchemaFormat)
    assert plan_output(resolve_lm("openai/gpt-4o-mini", api_key="x"), "chat").mode == "chat"
    forced = plan_output(resolve_lm("anthropic/claude-3-5-sonnet-20240620", api_key="x"), "json")
    assert (forced.mode, forced.force) == ("json", True)
    assert ollama_base("http://localhost:11434") == "http://localhost:11434/v1"
    assert ollama_base("http://localhost:11434/") == "http://localhost:11434/v1"
    assert ollama_base("http://gpu:11434/v1") == "http://gpu:11434/v1"


class FakeLlama:
    """Stands in for ``llama_cpp.Llama`` (a compiled library not installed here): records the call."""

    def __init__(self, content: str) -> None:
        self.content = content
        self.calls: list[dict[str, Any]] = []

    def create_chat_completion(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"choices": [{"message": {"content": self.content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10}}


def test_llama_cpp_gets_the_schema_as_a_grammar(memory: Memory) -> None:
    llm = FakeLlama(json.dumps({"facts": [FACT]}))
    lm = engine_lm(LlamaCppEngine(llm, name="qwen2.5-1.5b-instruct.gguf"))
    pipeline = Pipeline(memory, lm)
    assert isinstance(pipeline.adapter, SchemaFormat) and not pipeline.adapter.force
    result = memory.add(turn(), user_id="alice", infer=True)
    [call] = llm.calls
    fmt = call["response_format"]
    assert fmt["type"] == "json_object" and fmt["schema"]["required"] == ["facts"]
    assert [e.text for e in result.events] == ["Alice likes green tea"] and result.usage.prompt_tokens == 50
    assert llama_response_format({"type": "json_object"}) == {"type": "json_object"}
    assert llama_response_format(None) is None
