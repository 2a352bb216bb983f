"""Reads that need no ranking: one record, a page of records (used by the facade, the pipeline and the agent)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from .bounds import check_optional_label
from .models import MemoryKind, MemoryRecord, Page, as_utc
from .stores.base import MemoryFilter, VectorStore
from .validation import check_categories, check_kinds, check_list_args, check_memory_id, check_user_id


def memory_id(value: object) -> str:
    """A memory id in canonical form (the stores return UUIDs lower-case); ValidationError if not a UUID."""
    return check_memory_id(value)


def get_record(store: VectorStore, memory_id_: str, user_id: str, *, include_deleted: bool = False) -> MemoryRecord:
    from .errors import NotFoundError

    mid = memory_id(memory_id_)
    deleted = None if include_deleted else False
    found = store.get([mid], MemoryFilter(user_id=check_user_id(user_id), deleted=deleted))
    if not found:
        state = "" if include_deleted else "live "
        raise NotFoundError(f"no {state}memory {mid} for user {user_id}", memory_id=mid)
    return found[0]


def check_session_id(value: object) -> str | None:
    return check_optional_label(value, "session_id")


def list_page(
    store: VectorStore, *, user_id: str, offset: int = 0, limit: int = 50, categories: Sequence[str] | None = None,
    kinds: Sequence[MemoryKind] | None = None, since: datetime | None = None, until: datetime | None = None,
    deleted: bool | None = False, order: Literal["asc", "desc"] = "desc", session_id: str | None = None,
) -> Page:
    """A page of a user's memories, newest first by default (``deleted=True``: the trash; None: all)."""
    user_id = check_user_id(user_id)
    check_list_args(offset=offset, limit=limit, deleted=deleted, order=order, since=since, until=until)
    flt = MemoryFilter(
        user_id=user_id, categories=check_categories(categories) or None, kinds=check_kinds(kinds),
        since=as_utc(since) if since else None, until=as_utc(until) if until else None, deleted=deleted,
        session_id=check_session_id(session_id),
    )
    total = store.count(flt)
    items = store.scroll(flt, offset=offset, limit=limit, order=order)
    next_offset = offset + len(items) if offset + len(items) < total else None
    return Page(items=items, next_offset=next_offset, total=total)
