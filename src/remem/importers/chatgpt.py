"""The ChatGPT data export (``conversations.json`` of the "Export data" zip) -> episodes.

Format followed (the export as produced since 2023; fields not listed are ignored): a JSON list of
conversations ``{"id" | "conversation_id", "title", "create_time": float seconds, "current_node", "mapping"}``;
``mapping`` is the message tree, node id -> ``{"id", "parent", "children": [ids], "message": null | {"id",
"author": {"role": "user"|"assistant"|"system"|"tool", "name"}, "create_time": float | null, "content":
{"content_type", "parts": [...] | "text": str}, "recipient": "all" | a tool's name, "metadata": {...}}}``.

What becomes a memory: every message of the tree, every branch (a regenerated answer, an edited question) in
tree order, as an ``episode`` of the user with ``session_id`` = conversation id, ``source_ids`` = [message id],
``observed_at`` = the message's ``create_time`` (else the conversation's), ``role`` = author role, ``speaker`` =
author name, ``seq`` = its position, and ``metadata["import"]`` = source, conversation title (its first 500
characters), whether it is on the conversation's current branch, and the model slug. Its text is the string
parts joined (``text`` and ``multimodal_text`` content; images and files have no text), or ``content.text`` for
``code`` shown to the user.

Left out, with the reason in the summary: tool calls (a message whose ``recipient`` is not ``all``: code sent to
``python``, a ``dalle.text2im`` prompt, a browser query), tool messages (their output), messages hidden from the
conversation (``metadata.is_visually_hidden_from_conversation``: system prompts, custom instructions), other
content types (reasoning summaries, ``user_editable_context``…), messages without text, a repeated message id,
a repeated conversation (the same id twice in the file: the first is imported) and messages longer than
``REMEM_MAX_TEXT_CHARS``.

Refused (``ImportFormatError`` naming the JSON path, nothing written): ids and author names that are not
remem labels (control characters, over 200 characters), text with a NUL or a lone surrogate, and a
``create_time`` that is no time (``1e20``, ``-1e12``, ``NaN``: Unix seconds must fall in the years 1 to 9999).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..bounds import shown
from .base import (
    Label,
    Parsed,
    Part,
    Seconds,
    Skipped,
    Text,
    build_record,
    fail,
    from_timestamp,
    json_path,
    record_id,
    validate_list,
)

SOURCE = "chatgpt"
WHAT = "ChatGPT conversations.json export"
TEXT_TYPES = {"text", "multimodal_text"}
ROLES = {"user", "assistant", "system"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


#: Longest conversation title kept in a memory's metadata (longer ones are cut; the title is only a label).
MAX_TITLE_CHARS = 500


class Author(_Lenient):
    role: str
    name: Label | None = None


class Content(_Lenient):
    content_type: str
    parts: list[Part] | None = None
    text: Text | None = None


class Message(_Lenient):
    id: Label
    author: Author
    create_time: Seconds = None
    content: Content
    metadata: dict[str, Any] | None = None
    recipient: str | None = None


class Node(_Lenient):
    id: str | None = None
    message: Message | None = None
    parent: str | None = None
    children: list[str] = Field(default_factory=list)


class Conversation(_Lenient):
    id: Label | None = None
    conversation_id: Label | None = None
    title: Text | None = None
    create_time: Seconds = None
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
    out = Parsed()
    conversation_keys: set[str] = set()
    for c_index, conv in enumerate(conversations):
        if conv.key in conversation_keys:
            out.skipped.append(Skipped(where=json_path((c_index,)), reason="duplicate conversation"))
            continue
        conversation_keys.add(conv.key)
        out.conversations += 1
        current = _current_branch(conv)
        title = conv.title[:MAX_TITLE_CHARS] if conv.title is not None else None
        seen: set[str] = set()
        seq = 0
        for node_key in _tree_order(conv):
            msg = conv.mapping[node_key].message
            if msg is None:
                continue
            loc = (c_index, "mapping", node_key, "message")
            where = json_path(loc)
            text, reason = _text(msg)
            if reason is None and msg.id in seen:
                reason = "duplicate message id"
            if reason is None and len(text) > max_chars:
                reason = f"longer than {max_chars} characters (REMEM_MAX_TEXT_CHARS)"
            if reason is not None:
                out.skipped.append(Skipped(where=where, reason=reason))
                continue
            seen.add(msg.id)
            meta: dict[str, Any] = {"source": SOURCE, "conversation_title": title,
                                    "branch": "current" if node_key in current else "other"}
            slug = msg.metadata.get("model_slug") if msg.metadata else None
            if isinstance(slug, str):
                meta["model"] = slug
            elif slug is not None:
                raise fail(path, (*loc, "metadata", "model_slug"), f"must be a string, got {shown(slug, 30)}")
            out.records.append(build_record(
                path, loc, id=record_id(user_id, SOURCE, conv.key, msg.id), user_id=user_id, text=text,
                kind="episode",
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
        return "", f"author role {shown(msg.author.role, 40)}"
    if msg.recipient not in (None, "all"):  # addressed to a tool (python, dalle.text2im, browser...)
        return "", "tool call"
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
        return "", f"content type {shown(content.content_type, 40)}"
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
