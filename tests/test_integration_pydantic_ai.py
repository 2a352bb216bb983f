"""Pydantic AI: an ``Agent`` run by Pydantic AI's own ``FunctionModel``/``TestModel``, with remem's toolset reading
the user from ``RunContext.deps``, on the real embedded store."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from remem import InvalidUserIdError, Memory
from remem.integrations.pydantic_ai import RememDeps, memory_toolset


def scripted(*responses: ModelResponse) -> FunctionModel:
    steps = iter(responses)

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return next(steps)

    return FunctionModel(reply)


def agent() -> Agent[RememDeps, str]:
    return Agent(deps_type=RememDeps, toolsets=[memory_toolset])


def tool_returns(result: Any) -> list[str]:
    return [str(part.content) for message in result.all_messages() for part in getattr(message, "parts", [])
            if isinstance(part, ToolReturnPart)]


def test_agent_saves_for_alice_a_new_run_finds_it_bob_never_sees_it(fake_memory: Memory) -> None:
    first = agent().run_sync(
        "I'm vegan, remember that", deps=RememDeps(memory=fake_memory, user_id="alice"),
        model=scripted(ModelResponse(parts=[ToolCallPart("save_memory", {"text": "Alice is vegan"})]),
                       ModelResponse(parts=[TextPart("Noted.")])))
    assert tool_returns(first) == ["Saved."]
    assert first.output == "Noted."

    second = agent().run_sync(  # a new run, no message history: only the memory links them
        "What do I eat?", deps=RememDeps(memory=fake_memory, user_id="alice"),
        model=scripted(ModelResponse(parts=[ToolCallPart("search_memory", {"query": "vegan diet"})]),
                       ModelResponse(parts=[TextPart("Vegan.")])))
    (found,) = tool_returns(second)
    assert found.startswith("1. [") and found.endswith("] Alice is vegan")

    third = agent().run_sync(
        "What do I eat?", deps=RememDeps(memory=fake_memory, user_id="bob"),
        model=scripted(ModelResponse(parts=[ToolCallPart("search_memory", {"query": "vegan diet"})]),
                       ModelResponse(parts=[TextPart("?")])))
    assert tool_returns(third) == ["No memories found."]
    assert fake_memory.list(user_id="bob").total == 0


def test_model_sees_no_user_parameter(fake_memory: Memory) -> None:
    seen: dict[str, Any] = {}

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.update({t.name: t.parameters_json_schema for t in info.function_tools})
        return ModelResponse(parts=[TextPart("ok")])

    agent().run_sync("hi", deps=RememDeps(memory=fake_memory, user_id="alice"), model=FunctionModel(reply))
    assert set(seen) == {"search_memory", "save_memory"}
    assert set(seen["search_memory"]["properties"]) == {"query"}
    assert set(seen["save_memory"]["properties"]) == {"text"}


def test_test_model_calls_every_tool_for_the_deps_user(fake_memory: Memory) -> None:
    result = agent().run_sync("hi", deps=RememDeps(memory=fake_memory, user_id="carol"), model=TestModel())
    returns = {part.tool_name: part.content for message in result.all_messages()
               for part in getattr(message, "parts", []) if isinstance(part, ToolReturnPart)}
    assert returns["save_memory"] == "Saved."
    # the two calls run concurrently: the search sees the saved fact or nothing, never anything else
    assert returns["search_memory"] == "No memories found." or returns["search_memory"].endswith("] a")
    assert [r.text for r in fake_memory.list(user_id="carol").items] == ["a"]  # TestModel's argument
    assert fake_memory.users() == ["carol"]


def test_deps_validate_the_user(fake_memory: Memory) -> None:
    with pytest.raises(InvalidUserIdError):
        RememDeps(memory=fake_memory, user_id="no spaces allowed")


@pytest.mark.parametrize(("tool", "args", "error"), [  # review 2, issue 14: each ended the run
    ("search_memory", {"query": ""}, "invalid_input: query is empty"),
    ("save_memory", {"text": ""}, "invalid_input: text is empty"),
    ("save_memory", {"text": "nul \x00"}, "invalid_input: text contains a NUL character (position 4)"),
    ("save_memory", {"text": "x" * 1_000_001}, "invalid_input: text has 1000001 characters, more than the limit"),
])
def test_a_bad_argument_is_a_retry_the_model_sees(fake_memory: Memory, tool: str, args: dict[str, Any],
                                                  error: str) -> None:
    """A lone surrogate in the arguments is not in this list: Pydantic AI itself fails to serialise such a tool
    call (``PydanticSerializationError``) before any tool runs."""
    seen: list[str] = []
    steps = iter([ModelResponse(parts=[ToolCallPart(tool, args)]), ModelResponse(parts=[TextPart("Sorry.")])])

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen[:] = [str(part.content) for m in messages for part in getattr(m, "parts", [])
                   if isinstance(part, ToolReturnPart) and part.outcome == "retried"]  # a ModelRetry, as sent
        return next(steps)

    result = agent().run_sync("remember tulips", deps=RememDeps(memory=fake_memory, user_id="alice"),
                              model=FunctionModel(reply))
    assert result.output == "Sorry."  # the run completed
    assert len(seen) == 1 and seen[0].startswith(error)
    assert fake_memory.list(user_id="alice").total == 0
