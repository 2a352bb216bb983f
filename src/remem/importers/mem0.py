"""A Mem0 memory dump (what ``Memory.get_all()`` / ``MemoryClient.get_all()`` return, saved as JSON) -> facts.

Format followed (mem0 OSS ``get_all`` v1.1 and the platform's memories API; fields not listed are ignored):
either ``{"results": [...]}`` (other keys such as ``relations``, ``count``, ``next`` are ignored) or a plain list
of memories ``{"id", "memory", "user_id", "agent_id", "run_id", "hash", "metadata": {} | null, "categories":
[...] | null, "created_at", "updated_at"}`` with ISO 8601 times (``2024-07-20T01:30:52.167985-07:00``).

What becomes a memory: each item is a ``fact`` of its ``user_id`` (``user_id=`` of the import fills in items
without one; an item with neither is an error) with its text, ``categories`` (lower-cased like every remem
category), ``created_at``/``updated_at`` as given, ``source_ids`` = [mem0 id], ``session_id`` = ``run_id`` and
``metadata`` = the item's metadata plus ``metadata["import"]`` = source, mem0 id, hash, agent id and any other
fields the item carried (a ``metadata["import"]`` the item already had is kept as ``import.metadata_import``).
A text the user already has (remem's exact-duplicate check) is not stored twice.

Left out, with the reason in the summary: memories without text, a repeated mem0 id and texts longer than
``REMEM_MAX_TEXT_CHARS``.

Refused (``ImportFormatError`` naming the JSON path, nothing written): an invalid user id or category, ids
that are not remem labels, text with a NUL or a lone surrogate, times that are not ISO 8601 or out of range,
and metadata beyond remem's metadata limits (JSON types, 8 levels, 16 KiB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import ValidationError
from ..models import utcnow
from ..validation import check_categories, check_user_id
from .base import Label, Parsed, Skipped, Text, When, build_record, fail, json_path, record_id, validate_list

SOURCE = "mem0"
WHAT = "Mem0 get_all export"


class Mem0Memory(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Label
    memory: Text
    user_id: str | None = None
    agent_id: Label | None = None
    run_id: Label | None = None
    hash: Label | None = None
    metadata: dict[str, Any] | None = None
    categories: list[str] | None = None
    created_at: When = None
    updated_at: When = None


def parse(path: Path, data: Any, *, user_id: str | None, max_chars: int) -> Parsed:
    """Validate the whole dump, then map it (see the module docstring)."""
    prefix: tuple[int | str, ...] = ()
    if isinstance(data, dict):
        if "results" not in data:
            raise fail(path, (), "expected a list of memories or an object with 'results' — not a " + WHAT)
        data, prefix = data["results"], ("results",)
    items = validate_list(path, data, Mem0Memory, WHAT, prefix)
    default_user = check_user_id(user_id) if user_id is not None else None
    out = Parsed()
    seen: set[str] = set()
    for i, item in enumerate(items):
        loc: tuple[int | str, ...] = (*prefix, i)
        owner = item.user_id or default_user
        if owner is None:
            raise fail(path, (*loc, "user_id"), "no user_id (give the import a user to put such memories under)")
        try:
            check_user_id(owner)
            categories = check_categories(item.categories or [])
        except ValidationError as exc:
            raise fail(path, loc, str(exc)) from None
        where = json_path(loc)
        text = item.memory.strip()
        reason = ("no text" if not text else "duplicate mem0 id" if item.id in seen
                  else f"longer than {max_chars} characters (REMEM_MAX_TEXT_CHARS)" if len(text) > max_chars
                  else None)
        if reason is not None:
            out.skipped.append(Skipped(where=where, reason=reason))
            continue
        seen.add(item.id)
        info: dict[str, Any] = {"source": SOURCE, "id": item.id}
        info.update({k: v for k, v in {"hash": item.hash, "agent_id": item.agent_id, "run_id": item.run_id}.items()
                     if v is not None})
        info.update(item.model_extra or {})
        metadata = dict(item.metadata or {})
        if "import" in metadata:
            info["metadata_import"] = metadata["import"]
        metadata["import"] = info
        created = item.created_at or utcnow()
        out.records.append(build_record(
            path, loc, id=record_id(owner, SOURCE, item.id), user_id=owner, text=text, kind="fact",
            categories=categories,
            created_at=created, updated_at=item.updated_at or created, source_ids=[item.id],
            session_id=item.run_id, metadata=metadata))
        out.where.append(where)
    return out
