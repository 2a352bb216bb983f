"""The DSPy signatures of the pipeline. Each docstring *is* the prompt; replace it with ``instructions=``.

- :class:`MemoryExtract` — conversation turns → atomic facts about the user (categories, source ids, dates).
- :class:`UpdateMemory` — the maintenance agent (``dspy.ReAct``): reconcile new facts with similar memories.
- :class:`ResponseGenerator` — the chat agent (``dspy.ReAct``): answer, searching memory only when needed.

Field names are part of the contract (the scripted LM routes on them); instructions are free to change.
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel, Field

from ..retrieval.context import CORE_CATEGORIES

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "personal_details",
    "preferences",
    "health",
    "work",
    "education",
    "relationships",
    "family",
    "plans",
    "events",
    "hobbies",
    "places",
    "possessions",
    "opinions",
    "misc",
)

#: Categories whose facts the chat agent sees in its prompt without a tool call: ``CORE_CATEGORIES``, defined
#: with Memory.context (:mod:`remem.retrieval.context`) and re-exported here.
__all__ = ["CORE_CATEGORIES", "DEFAULT_CATEGORIES", "ExtractedFact", "MemoryExtract", "ResponseGenerator",
           "UpdateMemory"]


class ExtractedFact(BaseModel):
    """One atomic fact proposed by the extractor (validated and resolved by the host before use)."""

    text: str = Field(description="One self-contained sentence about the user, naming them (not 'I'/'he').")
    categories: list[str] = Field(default_factory=list, description="One or more of the given categories.")
    source_ids: list[str] = Field(default_factory=list, description="Ids of the messages the fact comes from.")
    date: str | None = Field(
        default=None,
        description="YYYY-MM-DD (the sender's local date) the fact happened/holds, resolved from relative dates; "
                    "else null.",
    )


class MemoryExtract(dspy.Signature):  # type: ignore[misc]
    """You turn new conversation turns into long-term memories about the user.

    Write atomic, self-contained facts: one fact per sentence, understandable without the conversation, naming
    the person instead of using pronouns, with no speculation. Keep what will matter later: identity and
    personal details, preferences and dislikes, health, work and education, relationships, plans, events,
    possessions, opinions. Skip greetings, small talk, questions without information, and anything said only
    by or about the assistant (the assistant's statements are not memories of the user). A correction
    ("actually, I prefer tea") is a fact of its own: state the current truth.
    Resolve relative dates against the timestamp of the message that contains them, on that timestamp's own
    local calendar as written with its UTC offset ("yesterday" in a message of 2023-05-08T00:30+02:00 means
    2023-05-07), and write the absolute date in `date` and, when useful, in the text.
    Cite the ids of the messages each fact comes from. Use the recent context only to understand the new
    messages; do not extract facts from it. Return an empty list when nothing is worth remembering.
    """

    new_messages: str = dspy.InputField(desc="New turns, one per line: [id] local timestamp with UTC offset (weekday) speaker: text")
    recent_context: str = dspy.InputField(desc="Earlier turns for context only (may be empty)")
    categories: list[str] = dspy.InputField(desc="Allowed categories")
    facts: list[ExtractedFact] = dspy.OutputField(desc="Atomic facts about the user; [] when none")


class UpdateMemory(dspy.Signature):  # type: ignore[misc]
    """You maintain a user's long-term memory. New facts arrived; similar existing memories are listed with
    small integer ids. Decide, for each new fact, one action and carry it out with the tools:

    - add_memory: the fact is new information (not covered by any existing memory).
    - update_memory: the fact refines, extends or corrects an existing memory (same topic): rewrite that
      memory so it states the current truth, e.g. "Alice likes coffee" + "Alice now prefers tea" → update to
      "Alice prefers tea (she used to like coffee)". Prefer update over add+delete for the same topic.
    - delete_memories: an existing memory is now false or explicitly retracted and nothing replaces it.
    - no_op: the fact is already known (same meaning), or not worth storing.

    Never leave two memories that contradict each other. Only use ids from the list; when a tool returns an
    error, read it and correct the call. Finish as soon as every new fact is handled.
    """

    new_facts: str = dspy.InputField(desc="New facts, one per line: F<n>: text [categories] (date)")
    existing_memories: str = dspy.InputField(desc="Similar existing memories, one per line: <id>: text")
    summary: str = dspy.OutputField(desc="One line per action taken, e.g. 'UPDATE 0', 'ADD', 'NOOP F2'")


class ResponseGenerator(dspy.Signature):  # type: ignore[misc]
    """You are a helpful assistant with a long-term memory of this user. Core facts about the user and the
    memories most relevant to the message are given, dated.
    Answer from the transcript, those memories and your own knowledge when they suffice; call a memory tool
    only when the question needs something about the user you do not see (past events, preferences, people,
    dates) — at most a few calls, each with a short focused search text. Never invent memories.
    Set save_memory to true when the user's latest message tells something about them worth remembering later
    (facts, preferences, plans, corrections); false for questions, small talk and thanks.
    """

    core_memories: str = dspy.InputField(
        desc="Memory for this message (Markdown): core facts about the user, then relevant dated memories")
    transcript: str = dspy.InputField(desc="Recent conversation, oldest first")
    question: str = dspy.InputField(desc="The user's new message")
    now: str = dspy.InputField(desc="Current local date and time of the user, with UTC offset (weekday)")
    response: str = dspy.OutputField(desc="Your reply to the user")
    save_memory: bool = dspy.OutputField(desc="True if the user's message should be remembered")
