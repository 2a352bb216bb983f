"""LlamaIndex: a ``FunctionAgent`` run by LlamaIndex's own ``MockFunctionCallingLLM`` with a ``Memory`` holding a
``RememMemoryBlock``, on the real embedded store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("llama_index.core")
# llama-index-core inspects pydantic models through attributes pydantic 2 deprecates: its noise, not ours
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20",
                                        "ignore::pydantic.warnings.PydanticDeprecatedSince211")

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory as LlamaMemory

from remem import InvalidUserIdError, Memory
from remem.integrations.llamaindex import RememMemoryBlock


class Recorder:
    """A response generator for MockFunctionCallingLLM that answers from a script and keeps what it was sent."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[list[ChatMessage]] = []

    def __call__(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.prompts.append(list(messages))
        return ChatMessage(role="assistant", content=self.replies.pop(0))


def run_session(memory: Memory, user_id: str, session_id: str, turns: list[str], llm: Recorder) -> LlamaMemory:
    chat_memory = LlamaMemory.from_defaults(session_id=session_id, token_limit=40, chat_history_token_ratio=0.5,
                                            memory_blocks=[RememMemoryBlock(memory=memory, user_id=user_id)])
    agent = FunctionAgent(tools=[], llm=MockFunctionCallingLLM(response_generator=llm))

    async def go() -> None:
        for turn in turns:
            await agent.run(user_msg=turn, memory=chat_memory)

    asyncio.run(go())
    return chat_memory


def system_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages if m.role == "system")


def test_agent_saves_for_alice_a_new_session_finds_it_bob_never_sees_it(fake_memory: Memory) -> None:
    first = Recorder("Nice, noted.", "Sure.", "Ok.")
    run_session(fake_memory, "alice", "chat-1",
                ["My favourite colour is blue and I live in Lisbon", "Let us talk about the weather today",
                 "Thanks for that"], first)
    # The short-term window holds ~20 tokens: older turns were flushed into remem as alice's episodes.
    episodes = fake_memory.list(user_id="alice", session_id="chat-1", order="asc").items
    assert [(r.role, r.text) for r in episodes][:2] == [
        ("user", "My favourite colour is blue and I live in Lisbon"), ("assistant", "Nice, noted.")]

    second = Recorder("Blue.")
    run_session(fake_memory, "alice", "chat-2", ["What is my favourite colour?"], second)
    assert "My favourite colour is blue and I live in Lisbon" in system_text(second.prompts[0])

    other = Recorder("I don't know.")
    run_session(fake_memory, "bob", "chat-2", ["What is my favourite colour?"], other)
    assert "blue" not in system_text(other.prompts[0]).lower()
    assert fake_memory.list(user_id="bob").total == 0


def test_block_content_and_budget(fake_memory: Memory) -> None:
    from remem.tokens import count_tokens

    for i in range(8):
        fake_memory.add(f"Alice note {i} about gardening " + "x" * 200, user_id="alice")
    fake_memory.add("Alice lives in Porto", user_id="alice", categories=["personal_details"])
    block = RememMemoryBlock(memory=fake_memory, user_id="alice", max_tokens=120)
    text = asyncio.run(block.aget([ChatMessage(role="user", content="gardening")]))
    assert text == fake_memory.context("gardening", user_id="alice", max_tokens=120).text  # Memory.context's block
    about, relevant = text.split("\n\n")
    assert about.splitlines()[0] == "## About the user" and about.endswith("Alice lives in Porto")
    lines = relevant.splitlines()
    assert lines[0] == "## Relevant memories"
    assert len(lines[1:]) == 2 and all(" about gardening " in line for line in lines[1:])  # 230 characters each
    assert count_tokens(text) <= 120
    assert asyncio.run(block.aget([])) == ""
    assert asyncio.run(RememMemoryBlock(memory=fake_memory, user_id="bob").aget(
        [ChatMessage(role="user", content="gardening")])) == ""
    with pytest.raises(InvalidUserIdError):
        RememMemoryBlock(memory=fake_memory, user_id="bad user")


def test_a_message_remem_cannot_take_does_not_end_the_run(fake_memory: Memory,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Review 2, issue 14: a lone surrogate or a NUL in a user message raised remem's ValidationError out of the
    agent's run (the block searches with it, then stores it as an episode)."""
    fake_memory.add("Alice likes tulips", user_id="alice")
    llm = Recorder("Tulips.", "Ok.", "Sure.")
    run_session(fake_memory, "alice", "chat-9",
                ["tulips \ud800 please", "and a NUL \x00 here about tulips",
                 "Tell me about tulips, a long question that pushes the earlier turns out of the short-term window"],
                llm)
    assert len(llm.prompts) == 3  # the run went on: every turn reached the model
    assert "Alice likes tulips" in system_text(llm.prompts[2])  # a searchable message still gets its block
    assert "Alice likes tulips" not in system_text(llm.prompts[0])  # the unsearchable one got none
    stored = [r.text for r in fake_memory.list(user_id="alice", session_id="chat-9", order="asc").items]
    assert stored and all("\ud800" not in t and "\x00" not in t for t in stored)
    assert "Tulips." in stored  # the flushed turns that can be stored are
    warnings = [r.getMessage() for r in caplog.records if r.name == "remem.integrations.llamaindex"]
    assert "remem memory block: the user message was not searched (query contains a lone surrogate (U+D800 at " \
           "position 7): it is not valid Unicode and cannot be stored as UTF-8)" in warnings
    assert any(w.startswith("remem memory block: a user message was not stored (message contains a NUL")
               for w in warnings)
    assert all("tulips" not in w for w in warnings)  # the text itself is never logged
