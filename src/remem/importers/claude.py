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

Left out, with the reason in the summary: other senders, messages without text, a repeated message uuid and
messages longer than ``REMEM_MAX_TEXT_CHARS``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..models import MemoryRecord
from .base import Parsed, Skipped, record_id, validate_list

SOURCE = "claude"
WHAT = "Claude conversations.json export"
ROLES = {"human": "user", "assistant": "assistant"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Block(_Lenient):
    type: str
    text: str | None = None


class File(_Lenient):
    file_name: str | None = None


class ChatMessage(_Lenient):
    uuid: str
    sender: str
    text: str | None = None
    content: list[Block] | None = None
    created_at: datetime | None = None
    attachments: list[File] = Field(default_factory=list)
    files: list[File] = Field(default_factory=list)


class Conversation(_Lenient):
    uuid: str
    name: str | None = None
    created_at: datetime | None = None
    chat_messages: list[ChatMessage]


def parse(path: Path, data: Any, *, user_id: str, max_chars: int) -> Parsed:
    """Validate the whole export, then map it (see the module docstring)."""
    conversations = validate_list(path, data, Conversation, WHAT)
    out = Parsed(conversations=len(conversations))
    for c_index, conv in enumerate(conversations):
        seen: set[str] = set()
        seq = 0
        for m_index, msg in enumerate(conv.chat_messages):
            where = f"$[{c_index}].chat_messages[{m_index}]"
            role = ROLES.get(msg.sender)
            text = _text(msg)
            reason = (f"sender {msg.sender!r}" if role is None else "no text" if not text
                      else "duplicate message uuid" if msg.uuid in seen
                      else f"longer than {max_chars} characters (REMEM_MAX_TEXT_CHARS)" if len(text) > max_chars
                      else None)
            if reason is not None or role is None:
                out.skipped.append(Skipped(where=where, reason=reason or "no role"))
                continue
            seen.add(msg.uuid)
            meta: dict[str, Any] = {"source": SOURCE, "conversation_title": conv.name}
            names = list(dict.fromkeys(f.file_name for f in [*msg.attachments, *msg.files] if f.file_name))
            if names:
                meta["files"] = names
            out.records.append(MemoryRecord(
                id=record_id(user_id, SOURCE, conv.uuid, msg.uuid), user_id=user_id, text=text, kind="episode",
                observed_at=msg.created_at or conv.created_at, source_ids=[msg.uuid], role=role,
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
