"""The Claude data export (``conversations.json`` of claude.ai's "Export data") -> episodes.

Format followed (the export as produced since 2024; fields not listed are ignored): a JSON list of
conversations ``{"uuid", "name", "created_at", "updated_at", "chat_messages": [...]}``, each message
``{"uuid", "sender": "human" | "assistant", "text", "content": [{"type": "text", "text"} | {"type":
"tool_use" | "tool_result" | "thinking", ...}], "created_at", "updated_at", "attachments": [{"file_name",
"extracted_content"}], "files": [{"file_name"}]}`` with ISO 8601 times (``2024-06-01T12:00:00.000000Z``).

What becomes a memory: every message with text, in the order of ``chat_messages``, as an ``episode`` with
``session_id`` = conversation uuid, ``source_ids`` = [message uuid], ``observed_at`` = ``created_at``, ``role``
user/assistant, ``seq`` = its position, and ``metadata["import"]`` = source, conversation name and the names of
attached files. The text is the message's ``text`` blocks joined (``content``); older exports without
``content`` use ``text``. Tool use, tool results and thinking blocks are not text the user or Claude said in
the conversation and are left out; so is the extracted content of attachments (their names are kept).

Left out, with the reason in the summary: other senders, messages without text, a repeated message uuid, a
repeated conversation (the same uuid twice in the file: the first is imported) and messages longer than
``REMEM_MAX_TEXT_CHARS``. The conversation name is kept to its first 500 characters.

Refused (``ImportFormatError`` naming the JSON path, nothing written): uuids and file names that are not remem
labels (control characters, over 200 characters), text with a NUL or a lone surrogate, and times that are not
ISO 8601 or whose UTC form a datetime cannot hold (``0001-01-01T00:00:00+05:00``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..bounds import shown
from .base import Label, Parsed, Skipped, Text, When, build_record, json_path, record_id, validate_list

SOURCE = "claude"
WHAT = "Claude conversations.json export"
ROLES = {"human": "user", "assistant": "assistant"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


#: Longest conversation name kept in a memory's metadata (longer ones are cut; the name is only a label).
MAX_TITLE_CHARS = 500


class Block(_Lenient):
    type: str
    text: Text | None = None


class File(_Lenient):
    file_name: Label | None = None


class ChatMessage(_Lenient):
    uuid: Label
    sender: str
    text: Text | None = None
    content: list[Block] | None = None
    created_at: When = None
    attachments: list[File] = Field(default_factory=list)
    files: list[File] = Field(default_factory=list)


class Conversation(_Lenient):
    uuid: Label
    name: Text | None = None
    created_at: When = None
    chat_messages: list[ChatMessage]


def parse(path: Path, data: Any, *, user_id: str, max_chars: int) -> Parsed:
    """Validate the whole export, then map it (see the module docstring)."""
    conversations = validate_list(path, data, Conversation, WHAT)
    out = Parsed()
    conversation_ids: set[str] = set()
    for c_index, conv in enumerate(conversations):
        if conv.uuid in conversation_ids:
            out.skipped.append(Skipped(where=json_path((c_index,)), reason="duplicate conversation"))
            continue
        conversation_ids.add(conv.uuid)
        out.conversations += 1
        title = conv.name[:MAX_TITLE_CHARS] if conv.name is not None else None
        seen: set[str] = set()
        seq = 0
        for m_index, msg in enumerate(conv.chat_messages):
            loc = (c_index, "chat_messages", m_index)
            where = json_path(loc)
            role = ROLES.get(msg.sender)
            text = _text(msg)
            reason = (f"sender {shown(msg.sender, 40)}" if role is None else "no text" if not text
                      else "duplicate message uuid" if msg.uuid in seen
                      else f"longer than {max_chars} characters (REMEM_MAX_TEXT_CHARS)" if len(text) > max_chars
                      else None)
            if reason is not None or role is None:
                out.skipped.append(Skipped(where=where, reason=reason or "no role"))
                continue
            seen.add(msg.uuid)
            meta: dict[str, Any] = {"source": SOURCE, "conversation_title": title}
            names = list(dict.fromkeys(f.file_name for f in [*msg.attachments, *msg.files] if f.file_name))
            if names:
                meta["files"] = names
            out.records.append(build_record(
                path, loc, id=record_id(user_id, SOURCE, conv.uuid, msg.uuid), user_id=user_id, text=text,
                kind="episode", observed_at=msg.created_at or conv.created_at, source_ids=[msg.uuid], role=role,
                session_id=conv.uuid, seq=seq, metadata={"import": meta}))
            out.where.append(where)
            seq += 1
    return out


def _text(msg: ChatMessage) -> str:
    if msg.content:
        blocks = [b.text for b in msg.content if b.type == "text" and b.text and b.text.strip()]
        if blocks:
            return "\n".join(blocks).strip()
        if any(b.type == "text" for b in msg.content):
            return ""
    return (msg.text or "").strip()
