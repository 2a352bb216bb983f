"""The ChatGPT data export (``conversations.json`` of the "Export data" zip) -> episodes.

Format followed (the export as produced since 2023; fields not listed are ignored): a JSON list of
conversations ``{"id" | "conversation_id", "title", "create_time": float seconds, "current_node", "mapping"}``;
``mapping`` is the message tree, node id -> ``{"id", "parent", "children": [ids], "message": null | {"id",
"author": {"role": "user"|"assistant"|"system"|"tool", "name"}, "create_time": float | null, "content":
{"content_type", "parts": [...] | "text": str}, "metadata": {...}}}``.

What becomes a memory: every message of the tree, every branch (a regenerated answer, an edited question) in
tree order, as an ``episode`` of the user with ``session_id`` = conversation id, ``source_ids`` = [message id],
``observed_at`` = the message's ``create_time`` (else the conversation's), ``role`` = author role, ``speaker`` =
author name, ``seq`` = its position, and ``metadata["import"]`` = source, conversation title, whether it is on
the conversation's current branch, and the model slug. Its text is the string parts joined (``text`` and
``multimodal_text`` content; images and files have no text), or ``content.text`` for ``code``.

Left out, with the reason in the summary: tool messages (browsing, code output), messages hidden from the
conversation (``metadata.is_visually_hidden_from_conversation``: system prompts, custom instructions), other
content types (reasoning summaries, ``user_editable_context``…), messages without text, a repeated message id,
and messages longer than ``REMEM_MAX_TEXT_CHARS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..models import MemoryRecord
from .base import Parsed, Skipped, from_timestamp, json_path, record_id, validate_list

SOURCE = "chatgpt"
WHAT = "ChatGPT conversations.json export"
TEXT_TYPES = {"text", "multimodal_text"}
ROLES = {"user", "assistant", "system"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Author(_Lenient):
    role: str
    name: str | None = None


class Content(_Lenient):
    content_type: str
    parts: list[Any] | None = None
    text: str | None = None


class Message(_Lenient):
    id: str
    author: Author
    create_time: float | None = None
    content: Content
    metadata: dict[str, Any] | None = None


class Node(_Lenient):
    id: str | None = None
    message: Message | None = None
    parent: str | None = None
    children: list[str] = Field(default_factory=list)


class Conversation(_Lenient):
    id: str | None = None
    conversation_id: str | None = None
    title: str | None = None
    create_time: float | None = None
    current_node: str | None = None
    mapping: dict[str, Node]

    @model_validator(mode="after")
    def _has_id(self) -> Conversation:
        if not (self.conversation_id or self.id):
            raise ValueError("a conversation needs an 'id' or 'conversation_id'")
        return self

    @property
    def key(self) -> str:
        return str(self.conversation_id or self.id)


def parse(path: Path, data: Any, *, user_id: str, max_chars: int) -> Parsed:
    """Validate the whole export, then map it (see the module docstring)."""
    conversations = validate_list(path, data, Conversation, WHAT)
    out = Parsed(conversations=len(conversations))
    for c_index, conv in enumerate(conversations):
        current = _current_branch(conv)
        seen: set[str] = set()
        seq = 0
        for node_key in _tree_order(conv):
            msg = conv.mapping[node_key].message
            if msg is None:
                continue
            where = json_path((c_index, "mapping", node_key, "message"))
            text, reason = _text(msg)
            if reason is None and msg.id in seen:
                reason = "duplicate message id"
            if reason is None and len(text) > max_chars:
                reason = f"longer than {max_chars} characters (REMEM_MAX_TEXT_CHARS)"
            if reason is not None:
                out.skipped.append(Skipped(where=where, reason=reason))
                continue
            seen.add(msg.id)
            meta: dict[str, Any] = {"source": SOURCE, "conversation_title": conv.title,
                                    "branch": "current" if node_key in current else "other"}
            if msg.metadata and isinstance(msg.metadata.get("model_slug"), str):
                meta["model"] = msg.metadata["model_slug"]
            out.records.append(MemoryRecord(
                id=record_id(user_id, SOURCE, conv.key, msg.id), user_id=user_id, text=text, kind="episode",
                observed_at=from_timestamp(msg.create_time if msg.create_time is not None else conv.create_time),
                source_ids=[msg.id], role=msg.author.role, speaker=msg.author.name, session_id=conv.key,
                seq=seq, metadata={"import": meta}))
            out.where.append(where)
            seq += 1
    return out


def _text(msg: Message) -> tuple[str, str | None]:
    """(text, None) for a message to keep, else ("", the reason it is left out)."""
    if msg.author.role == "tool":
        return "", "tool message"
    if msg.author.role not in ROLES:
        return "", f"author role {msg.author.role!r}"
    if msg.metadata and msg.metadata.get("is_visually_hidden_from_conversation"):
        return "", "hidden from the conversation"
    content = msg.content
    if content.content_type in TEXT_TYPES:
        pieces = [p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None
                  for p in content.parts or []]  # dict parts: images, files (text only for transcripts)
        text = "\n".join(p for p in pieces if isinstance(p, str) and p.strip())
    elif content.content_type == "code":
        text = content.text or ""
    else:
        return "", f"content type {content.content_type!r}"
    text = text.strip()
    return (text, None) if text else ("", "no text")


def _tree_order(conv: Conversation) -> list[str]:
    """Node ids depth first from the roots, children in their listed order (each branch stays contiguous)."""
    mapping = conv.mapping
    roots = [k for k, n in mapping.items() if n.parent is None or n.parent not in mapping]
    order: list[str] = []
    visited: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        key = stack.pop()
        if key in visited or key not in mapping:
            continue
        visited.add(key)
        order.append(key)
        stack.extend(reversed(mapping[key].children))
    order.extend(k for k in mapping if k not in visited)  # a cycle: keep the nodes anyway, in file order
    return order


def _current_branch(conv: Conversation) -> set[str]:
    """The node ids from the root to ``current_node`` (what ChatGPT shows)."""
    branch: set[str] = set()
    key = conv.current_node
    while key is not None and key in conv.mapping and key not in branch:
        branch.add(key)
        key = conv.mapping[key].parent
    return branch
