"""The vector store contract and the pure code both Qdrant backends share.

A store keeps :class:`~remem.models.MemoryRecord` payloads with a dense vector and a BM25 sparse vector. It
knows nothing of history, deduplication or fusion: those live above it, so both backends return identical
results for identical inputs (the contract tests check this congruence).

Every read takes a :class:`MemoryFilter` whose ``user_id`` is required unless ``all_users`` is set explicitly
(the admin path): no method can search across users by omission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import StoreError
from ..models import MemoryRecord

SCHEMA_FIELDS = set(MemoryRecord.model_fields)
TIME_FIELD = "t"  # observed_at, else created_at: what time filters and ordering use
STATE_FIELD = "state"  # "live" | "deleted" (a keyword: bool matching is unreliable in qdrant-edge 0.9)


@dataclass(frozen=True)
class MemoryFilter:
    """What a read may see. ``user_id`` is mandatory unless ``all_users`` (admin) is True."""

    user_id: str | None
    categories: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    session_id: str | None = None
    hash: str | None = None
    ids: Sequence[str] | None = None
    deleted: bool | None = False  # False: live only; True: deleted only; None: both
    all_users: bool = False

    def __post_init__(self) -> None:
        if self.user_id is None and not self.all_users:
            raise StoreError("a store read without user_id must set all_users=True (admin path)")


@dataclass
class ScoredRecord:
    record: MemoryRecord
    score: float


@dataclass
class StoreQuery:
    """One signal's query: ``dense`` vector or BM25 ``text`` (exactly one)."""

    filter: MemoryFilter
    limit: int
    dense: np.ndarray | None = None
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    """The store contract (both Qdrant backends implement it; see ``tests/test_store_contract.py``)."""

    name: str

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        """Insert or replace records (by id) with their dense vectors; BM25 vectors come from the text."""

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        """Replace the payload of existing records, keeping their vectors (soft delete, restore, metadata)."""

    def get(self, ids: Sequence[str], flt: MemoryFilter) -> list[MemoryRecord]:
        """Records with these ids that also match the filter (other users' ids are simply absent)."""

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        """Top ``q.limit`` records for one signal (dense cosine or BM25), filtered."""

    def scroll(
        self, flt: MemoryFilter, *, offset: int, limit: int, order: Literal["asc", "desc"] = "desc"
    ) -> list[MemoryRecord]:
        """A page of records ordered by time (observed_at, else created_at)."""

    def count(self, flt: MemoryFilter) -> int: ...

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        """Hard delete (erasure, import rollback)."""

    def delete_user(self, user_id: str) -> int:
        """Hard delete every record of a user; returns how many were removed."""

    def close(self) -> None: ...


def iso(value: datetime) -> str:
    return value.isoformat()


def to_payload(record: MemoryRecord) -> dict[str, Any]:
    """The JSON payload stored with a point: the whole record plus the filter helpers ``t`` and ``deleted``."""
    payload = record.model_dump(mode="json")
    payload[TIME_FIELD] = iso(record.observed_at or record.created_at)
    payload[STATE_FIELD] = "deleted" if record.deleted_at is not None else "live"
    return payload


def from_payload(payload: dict[str, Any]) -> MemoryRecord:
    return MemoryRecord.model_validate({k: v for k, v in payload.items() if k in SCHEMA_FIELDS})


# Payload indexes both backends create: name -> kind.
INDEXES: dict[str, str] = {
    "user_id": "tenant",
    "categories": "keyword",
    "kind": "keyword",
    "hash": "keyword",
    "session_id": "keyword",
    TIME_FIELD: "datetime",
    "created_at": "datetime",
    STATE_FIELD: "keyword",
}


_BM25: Any = None


def bm25_model() -> Any:
    """Qdrant's own BM25 (from qdrant-edge) — used by both backends so their sparse vectors are identical."""
    global _BM25
    if _BM25 is None:
        import qdrant_edge as q

        _BM25 = q.Bm25(q.Bm25Config(language="english"))
    return _BM25


def sparse_document(text: str) -> tuple[list[int], list[float]]:
    vec = bm25_model().embed_document(text)
    return list(vec.indices), list(vec.values)


def sparse_query(text: str) -> tuple[list[int], list[float]]:
    vec = bm25_model().embed_query(text)
    return list(vec.indices), list(vec.values)
