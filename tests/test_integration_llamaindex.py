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
    for i in range(8):
        fake_memory.add(f"Alice note {i} about gardening " + "x" * 200, user_id="alice")
    block = RememMemoryBlock(memory=fake_memory, user_id="alice", limit=5, max_tokens=120)
    text = asyncio.run(block.aget([ChatMessage(role="user", content="gardening")]))
    lines = text.splitlines()
    assert 1 <= len(lines) <= 2  # 120 tokens ~ 480 characters: two 230-character memories at most
    assert all(" about gardening " in line for line in lines)
    assert asyncio.run(block.aget([])) == ""
    assert asyncio.run(RememMemoryBlock(memory=fake_memory, user_id="bob").aget(
        [ChatMessage(role="user", content="gardening")])) == ""
    with pytest.raises(InvalidUserIdError):
        RememMemoryBlock(memory=fake_memory, user_id="bad user")
