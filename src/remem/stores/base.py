"""The vector store contract and the pure code both Qdrant backends share.

A store keeps :class:`~remem.models.MemoryRecord` payloads with a dense vector and a BM25 sparse vector (computed
by :mod:`remem.stores.bm25`, the same for both backends). It
knows nothing of history, deduplication or fusion: those live above it, so both backends return identical
results for identical inputs (the contract tests check this congruence).

Every read takes a :class:`MemoryFilter` whose ``user_id`` is required unless ``all_users`` is set explicitly
(the admin path): no method can search across users by omission.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import StoreError
from ..models import MemoryRecord, as_utc

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
    seq_min: int | None = None  # inclusive range on MemoryRecord.seq (neighbour lookup within a session)
    seq_max: int | None = None
    windows: Sequence[tuple[str, int, int]] | None = None  # any of (session_id, seq_min, seq_max): neighbours
    hash: str | None = None
    hashes: Sequence[str] | None = None  # any of these content hashes (batched exact-duplicate checks)
    ids: Sequence[str] | None = None
    deleted: bool | None = False  # False: live only; True: deleted only; None: both
    all_users: bool = False
    chunks: bool = False  # also match the index chunks of long memories (remem.chunking); reads never do

    def __post_init__(self) -> None:
        if self.user_id is None and not self.all_users:
            raise StoreError("a store read without user_id must set all_users=True (admin path)")
        # Chunks are index entries, not memories: a filter without kinds means "every kind of memory".
        if self.kinds is None and not self.chunks:
            object.__setattr__(self, "kinds", ("episode", "fact"))
        elif self.kinds is not None and self.chunks and "chunk" not in self.kinds:
            object.__setattr__(self, "kinds", (*self.kinds, "chunk"))


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
        """Top ``q.limit`` records for one signal (dense cosine or BM25), filtered; equal scores by id."""

    def scroll(
        self, flt: MemoryFilter, *, offset: int, limit: int, order: Literal["asc", "desc"] = "desc"
    ) -> list[MemoryRecord]:
        """A page of records ordered by time (observed_at, else created_at), then id: stable for paging."""

    def count(self, flt: MemoryFilter) -> int: ...

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        """Hard delete (erasure, import rollback)."""

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        """Hard delete every record of a user so their text leaves the store's files; returns how many records
        were removed. ``compact=True`` compacts the files even when no record is left (finishing an erasure that
        a crash interrupted after the delete). Other users' reads and writes keep working meanwhile."""

    def close(self) -> None: ...


def time_of(record: MemoryRecord) -> datetime:
    """The time a record is filtered and ordered by (``observed_at``, else ``created_at``)."""
    return record.observed_at or record.created_at


def page_by_time(
    first: Callable[[int], list[MemoryRecord]],
    at: Callable[[MemoryFilter], list[MemoryRecord]],
    flt: MemoryFilter,
    *,
    offset: int,
    limit: int,
    order: Literal["asc", "desc"],
) -> list[MemoryRecord]:
    """A page in a total order: time, then id (``desc`` is the exact reverse of ``asc``).

    Qdrant's ``order_by`` leaves the order of equal timestamps unspecified (and the edge engine's tie order
    changes with the requested limit), so paging by offset could repeat or skip records. ``first(n)`` returns
    the first ``n`` records by time; when it fills up, every record sharing the last timestamp is fetched with
    ``at(filter)`` and the ties are ordered by id.
    """
    if limit <= 0:
        return []
    wanted = offset + limit
    head = first(wanted)
    if len(head) >= wanted:
        boundary = time_of(head[-1])
        before = [r for r in head if time_of(r) != boundary]
        tied = at(replace(flt, since=boundary, until=boundary))
        head = before + [r for r in tied if time_of(r) == boundary]  # exact, whatever the index's precision
    head.sort(key=lambda r: (time_of(r), r.id), reverse=order == "desc")
    return head[offset:wanted]


#: Extra candidates fetched past ``limit`` to see whether the score at the cut is tied.
TIE_MARGIN = 8
#: Scores equal to this many decimals are ties (backends differ in float noise around 1e-7).
SCORE_DECIMALS = 5
#: The widest fetch used to complete a tie class (bounds latency when thousands of results tie).
TIE_FETCH_MAX = 4096


def top_k(fetch: Callable[[int], list[tuple[str, float]]], limit: int) -> list[tuple[str, float]]:
    """The best ``limit`` (id, score) pairs in a total order: score (to 5 decimals), then id.

    An engine returns equal-score results in an unspecified order, and which members of a tie class at the
    cut make it into the top ``limit`` differs between backends (BM25 ties are common). ``fetch(n)`` returns
    the first ``n`` ids by score *without payloads* (cheap); it is called with a margin, widened until the tie
    class at the cut is complete, so both backends return the same ids in the same order (up to
    :data:`TIE_FETCH_MAX` results fetched). Callers then load the payloads of the chosen ``limit`` only.
    """
    if limit <= 0:
        return []
    n = limit + TIE_MARGIN
    while True:
        hits = fetch(n)
        if len(hits) < n or round(hits[-1][1], SCORE_DECIMALS) != round(hits[limit - 1][1], SCORE_DECIMALS):
            break
        if n >= TIE_FETCH_MAX + limit:
            break
        n = min(n * 2, TIE_FETCH_MAX + limit)
    hits.sort(key=lambda h: (-round(h[1], SCORE_DECIMALS), h[0]))
    return hits[:limit]


def iso(value: datetime) -> str:
    """The UTC ISO form payload times and time filters share (an aware bound in any zone is the same instant)."""
    return as_utc(value).isoformat()


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
    "seq": "integer",
    TIME_FIELD: "datetime",
    "created_at": "datetime",
    STATE_FIELD: "keyword",
}
