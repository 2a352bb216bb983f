"""The DSPy signatures of graph memory (needs the ``remem[llm]`` extra). Docstrings are the prompts.

- :class:`TripletExtract` — new conversation turns → ``(subject, relation, object)`` triplets with entity types,
  disambiguating hints, source message ids and the world time the relation started or ended.
- :class:`EntityMatch` — the short confirmation step of entity resolution, called only for ambiguous mentions.

Field names are the contract (the scripted LM routes on the input fields: ``entity_types`` and
``mention``/``candidates`` appear in no other signature).
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel, Field


class ExtractedTriplet(BaseModel):
    """One relation proposed by the extractor (validated and resolved by the host before use)."""

    subject: str = Field(description="Name of the subject entity, e.g. 'Maya' (the user by name, never 'I').")
    subject_type: str = Field(default="person", description="One of the entity types.")
    subject_hint: str | None = Field(
        default=None, description="Short description telling the subject apart from others with the same name, "
                                  "e.g. \"Alice's sister\"; null when the name is unambiguous.")
    relation: str = Field(description="Short snake_case verb: sister_of, lives_in, works_at, likes, visited, …")
    object: str = Field(description="Name of the object entity, e.g. 'Lisbon'.")
    object_type: str = Field(default="thing", description="One of the entity types.")
    object_hint: str | None = Field(default=None, description="Like subject_hint, for the object.")
    source_ids: list[str] = Field(default_factory=list, description="Ids of the messages the relation comes from.")
    valid_from: str | None = Field(
        default=None, description="YYYY-MM-DD (sender's local date) the relation started, resolved from relative "
                                  "dates ('since March'); null when not said.")
    valid_to: str | None = Field(
        default=None, description="YYYY-MM-DD the relation ended ('until last week', 'moved away from Berlin in "
                                  "March'); null when it still holds or it is not said.")


class TripletExtract(dspy.Signature):  # type: ignore[misc]
    """You turn new conversation turns into a knowledge graph of the user's world: (subject, relation, object)
    triplets about people, places, organisations, things and events the user talks about.

    Name entities by their proper names ("Maya", "Lisbon", "Acme"); write the user by their name, never "I" or
    "me". Use a short snake_case verb for the relation (sister_of, lives_in, works_at, likes, owns, visited,
    married_to, studies_at, member_of). Give each entity one of the entity types. When two different entities
    share a name, or one could be mistaken for another, add a short hint to each ("Alice's sister", "Alice's
    colleague at Acme").
    Time: resolve relative dates against the timestamp of the message that contains them, on its own local
    calendar ("since March" in a message of 2024-05-08 → valid_from 2024-03-01; "until last week" → valid_to the
    Monday of last week). A change ends the old relation and starts a new one: "moved from Berlin to Lisbon in
    March" is lives_in Berlin with valid_to and lives_in Lisbon with valid_from, both that date.
    Cite the ids of the messages each triplet comes from. Use the recent context only to understand the new
    messages. Skip greetings, opinions about the conversation, and anything said only about the assistant.
    Return an empty list when there is nothing to link.
    """

    new_messages: str = dspy.InputField(desc="New turns, one per line: [id] local timestamp with UTC offset (weekday) speaker: text")
    recent_context: str = dspy.InputField(desc="Earlier turns for context only (may be empty)")
    entity_types: list[str] = dspy.InputField(desc="Allowed entity types")
    triplets: list[ExtractedTriplet] = dspy.OutputField(desc="Triplets; [] when none")


class EntityMatch(dspy.Signature):  # type: ignore[misc]
    """Decide whether a newly mentioned entity is one of the known candidate entities of this user's memory or a
    different one. Names alone can mislead: two people may share a first name, one place may be spelled two
    ways. Use the hints, types and known facts. Answer with the number of the matching candidate, or -1 when
    the mention is a different entity from all of them."""

    mention: str = dspy.InputField(desc="The new mention: name (type) — hint; the sentence it was said in")
    candidates: str = dspy.InputField(desc="Known entities, one per line: <n>: name (type) — hint; a few facts")
    match: int = dspy.OutputField(desc="Number of the matching candidate, or -1 for a new entity")
