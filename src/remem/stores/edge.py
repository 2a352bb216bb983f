"""The default store: Qdrant's engine embedded in-process (``qdrant-edge-py``), persisted on disk.

One shard per data directory; one process per directory (enforced with an OS file lock, so a second process
gets a clear :class:`~remem.errors.StoreLockedError` instead of corrupting the WAL). Within the process the shard
is shared by all threads: writes are serialised by a lock, reads run concurrently with each other and with
writes. Erasure rewrites the shard (see :meth:`EdgeStore.rewrite`) while other users keep reading and writing:
only the final swap of the files excludes readers, for the few milliseconds it takes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import StoreError, StoreLockedError
from ..models import MemoryRecord
from .base import (
    INDEXES,
    STATE_FIELD,
    TIME_FIELD,
    MemoryFilter,
    ScoredRecord,
    StoreQuery,
    from_payload,
    iso,
    page_by_time,
    to_payload,
    top_k,
)
from .bm25 import LEGACY_SIGNATURE, signature, sparse_document, sparse_query
from .rwlock import RWLock

log = logging.getLogger("remem.store")

DENSE = "dense"
SPARSE = "bm25"
#: Beside the shard: which BM25 analysis built the sparse vectors (``{"bm25": signature}``).
SPARSE_META = "bm25.json"
#: Optimizer settings of new shards: vacuum any segment with deleted points, and never build HNSW (per-user
#: search is an exact scan of the tenant's points through the payload index, and an HNSW build of a large
#: shard would take minutes).
VACUUM: dict[str, Any] = {"deleted_threshold": 0.0, "vacuum_min_vector_number": 0, "indexing_threshold": 0}


class _DirectoryLock:
    """An exclusive, non-blocking ``flock`` on ``<dir>/.lock``; released when the process exits."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".lock"
        try:  # never through a link: the pid is written into this file
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise StoreError(f"{self.path} is a symbolic link: remove it (remem writes its process id there)",
                             path=str(self.path)) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise StoreLockedError(
                f"the data directory {directory} is in use by another process (pid {holder}); the embedded "
                "store allows one process per directory — use `remem serve` and talk to it, or a Qdrant server",
                path=str(directory),
                pid=holder,
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class EdgeStore:
    """:class:`~remem.stores.base.VectorStore` on an embedded Qdrant edge shard at ``path``."""

    name = "edge"

    def __init__(self, path: str | Path, dimensions: int) -> None:
        import qdrant_edge as q

        self._q = q
        self.path = Path(path)
        self.dimensions = dimensions
        self._lock_file = _DirectoryLock(self.path)
        self._write = threading.Lock()  # one writer at a time
        self._rw = RWLock()  # readers share; the shard swap of a rewrite is exclusive
        self._rewriting = threading.Lock()  # one rewrite (erasure) at a time
        self._dirty: set[str] | None = None  # ids written while a rewrite copies the shard
        self._shard: Any = None
        shard_dir = self.path / "shard"
        try:
            self._recover_rewrite()
            if (shard_dir / "edge_config.json").exists():
                self._shard = q.EdgeShard.load(str(shard_dir))
                self._check_dimensions(shard_dir)
                self._check_sparse()
            else:
                self._shard = self._create_shard(shard_dir)
                self._record_sparse()
        except StoreError:
            self._lock_file.release()
            raise
        except Exception as exc:
            self._lock_file.release()
            raise StoreError(f"cannot open the embedded store at {shard_dir}: {exc}") from exc

    def _create_shard(self, shard_dir: Path) -> Any:
        q = self._q
        config = q.EdgeConfig(
            vectors={DENSE: q.EdgeVectorParams(size=self.dimensions, distance=q.Distance.Cosine)},
            sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
            optimizers=q.EdgeOptimizersConfig(**VACUUM),
        )
        shard = q.EdgeShard.create(str(shard_dir), config)
        self._create_indexes(shard)
        return shard

    def _recover_rewrite(self) -> None:
        """Finish or undo a :meth:`rewrite` that a crash interrupted (the swap is two renames)."""
        shard, new, old = self.path / "shard", self.path / "shard.new", self.path / "shard.old"
        if not shard.exists() and old.exists():
            if new.exists() and (new / "COMPLETE").exists():
                new.rename(shard)
            else:
                old.rename(shard)
        if new.exists():
            shutil.rmtree(new)
        if old.exists():
            shutil.rmtree(old)
        (shard / "COMPLETE").unlink(missing_ok=True)

    def rewrite(self) -> int:
        """Copy every point into a fresh shard and swap it in, then remove the old files.

        This is how erasure becomes real on the embedded engine: deleting points leaves their payload in the
        engine's write-ahead log until it recycles the log segment, and qdrant-edge 0.9 has no call to force
        that. The copy costs about as much as inserting the remaining points without embedding them
        (~8k points/s) and runs beside normal traffic: points written meanwhile are tracked and copied again
        before the swap, and only the swap itself (close, two renames, load) excludes readers and writers.
        Crash-safe: :meth:`_recover_rewrite` completes or rolls back the swap on open.
        """
        with self._rewriting:
            return self._rewrite()

    def _rewrite(self) -> int:
        q = self._q
        shard_dir, new_dir, old_dir = self.path / "shard", self.path / "shard.new", self.path / "shard.old"
        with self._write:
            current = self._open()
            self._dirty = set()
        try:
            if new_dir.exists():
                shutil.rmtree(new_dir)
            fresh = self._create_shard(new_dir)
            copied = 0
            offset: Any = None
            while True:  # phase 1: copy beside live traffic
                with self._rw.read():
                    points, offset = current.scroll(
                        q.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True)
                    )
                if points:
                    fresh.update(q.UpdateOperation.upsert_points(
                        [q.Point(id=str(p.id), vector=p.vector, payload=p.payload) for p in points]
                    ))
                    copied += len(points)
                if offset is None:
                    break
            with self._write:  # phase 2: catch up with what was written meanwhile, then swap
                dirty = sorted(self._dirty or ())
                for start in range(0, len(dirty), 1000):
                    ids = dirty[start:start + 1000]
                    with self._rw.read():
                        points = current.retrieve(ids, with_payload=True, with_vector=True)
                    fresh.update(q.UpdateOperation.delete_points(ids))
                    if points:
                        fresh.update(q.UpdateOperation.upsert_points(
                            [q.Point(id=str(p.id), vector=p.vector, payload=p.payload) for p in points]
                        ))
                fresh.flush()
                fresh.close()
                (new_dir / "COMPLETE").touch()
                with self._rw.write():
                    current.flush()
                    current.close()
                    self._shard = None
                    shard_dir.rename(old_dir)
                    new_dir.rename(shard_dir)
                    (shard_dir / "COMPLETE").unlink()
                    self._shard = q.EdgeShard.load(str(shard_dir))
                self._dirty = None
        finally:
            self._dirty = None
        shutil.rmtree(old_dir, ignore_errors=True)
        return copied

    def _record_sparse(self) -> None:
        meta = self.path / SPARSE_META
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bm25": signature()}))
        os.replace(tmp, meta)

    def _check_sparse(self) -> None:
        """Re-index the sparse vectors if another BM25 analysis built them (a store of an older remem).

        A store without the record is from before it existed (Qdrant's ``word`` tokenizer). The record is
        written only after the re-index is flushed, so a crash midway re-indexes again on the next open.
        """
        meta = self.path / SPARSE_META
        stored = json.loads(meta.read_text()).get("bm25") if meta.exists() else LEGACY_SIGNATURE
        if stored != signature():
            count = self.reindex_sparse()
            (log.warning if count else log.debug)("re-indexed the BM25 vectors of %d memories at %s (%s -> %s)", count, self.path,
                        stored, signature())
            self._record_sparse()

    def reindex_sparse(self) -> int:
        """Recompute every point's BM25 vector from its stored text; dense vectors and payloads stay.

        Used on open when the store's BM25 analysis differs from this remem's (see :mod:`remem.stores.bm25`);
        no embedding model is involved. Returns the number of points re-indexed (live and deleted).
        """
        q = self._q
        count = 0
        with self._write:
            shard = self._open()
            offset: Any = None
            while True:
                points, offset = shard.scroll(
                    q.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=False)
                )
                if points:
                    vectors = []
                    for p in points:
                        indices, values = sparse_document(str((p.payload or {}).get("text", "")))
                        vectors.append(q.PointVectors(
                            id=p.id, vector={SPARSE: q.SparseVector(indices=indices, values=values)}
                        ))
                    shard.update(q.UpdateOperation.update_vectors(vectors))
                    count += len(points)
                if offset is None:
                    break
            shard.flush()
        return count

    def _check_dimensions(self, shard_dir: Path) -> None:
        config = json.loads((shard_dir / "edge_config.json").read_text())
        size = config.get("vectors", {}).get(DENSE, {}).get("size")
        if size is not None and int(size) != self.dimensions:
            self._shard.close()
            raise StoreError(
                f"the store at {shard_dir} holds {size}-d vectors but the embedder makes {self.dimensions}-d "
                "ones; use the embedder it was built with, or export, then import into a new REMEM_HOME",
                stored=size,
                embedder=self.dimensions,
            )

    def _create_indexes(self, shard: Any) -> None:
        q = self._q
        for field, kind in INDEXES.items():
            schema: Any
            if kind == "tenant":
                schema = q.KeywordIndexParams(is_tenant=True)
            elif kind == "keyword":
                schema = q.PayloadSchemaType.Keyword
            elif kind == "datetime":
                schema = q.PayloadSchemaType.Datetime
            elif kind == "integer":
                schema = q.PayloadSchemaType.Integer
            else:
                raise AssertionError(kind)
            shard.update(q.UpdateOperation.create_field_index(field, schema))

    def _open(self) -> Any:
        if self._shard is None:
            raise StoreError(f"the store at {self.path} is closed")
        return self._shard

    # -- filters -------------------------------------------------------------------------------------------
    def _filter(self, flt: MemoryFilter) -> Any:
        q = self._q
        must: list[Any] = []
        if flt.user_id is not None:
            must.append(q.FieldCondition(key="user_id", match=q.MatchValue(flt.user_id)))
        if flt.categories:
            must.append(q.FieldCondition(key="categories", match=q.MatchAny(list(flt.categories))))
        if flt.kinds:
            must.append(q.FieldCondition(key="kind", match=q.MatchAny(list(flt.kinds))))
        if flt.session_id is not None:
            must.append(q.FieldCondition(key="session_id", match=q.MatchValue(flt.session_id)))
        if flt.seq_min is not None or flt.seq_max is not None:
            must.append(q.FieldCondition(key="seq", range=q.RangeFloat(gte=flt.seq_min, lte=flt.seq_max)))
        if flt.hash is not None:
            must.append(q.FieldCondition(key="hash", match=q.MatchValue(flt.hash)))
        if flt.hashes is not None:
            must.append(q.FieldCondition(key="hash", match=q.MatchAny(list(flt.hashes))))
        if flt.since is not None or flt.until is not None:
            must.append(
                q.FieldCondition(
                    key=TIME_FIELD,
                    range=q.RangeDateTime(
                        gte=iso(flt.since) if flt.since else None, lte=iso(flt.until) if flt.until else None
                    ),
                )
            )
        if flt.deleted is not None:
            must.append(q.FieldCondition(key=STATE_FIELD, match=q.MatchValue("deleted" if flt.deleted else "live")))
        if flt.ids is not None:
            must.append(q.HasIdCondition(set(flt.ids)))
        if flt.windows:
            should = [
                q.Filter(must=[q.FieldCondition(key="session_id", match=q.MatchValue(sid)),
                               q.FieldCondition(key="seq", range=q.RangeFloat(gte=lo, lte=hi))])
                for sid, lo, hi in flt.windows
            ]
            return q.Filter(must=must, should=should)
        return q.Filter(must=must) if must else None

    # -- writes --------------------------------------------------------------------------------------------
    def _points(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> list[Any]:
        q = self._q
        points = []
        for record, vector in zip(records, vectors, strict=True):
            indices, values = sparse_document(record.text)
            points.append(
                q.Point(
                    id=record.id,
                    vector={DENSE: vector.tolist(), SPARSE: q.SparseVector(indices=indices, values=values)},
                    payload=to_payload(record),
                )
            )
        return points

    def _touch(self, ids: Sequence[str]) -> None:
        """Under the write lock: remember ids written while a rewrite is copying the shard."""
        if self._dirty is not None:
            self._dirty.update(ids)

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if not records:
            return
        points = self._points(records, vectors)
        with self._write, self._rw.read():
            self._open().update(self._q.UpdateOperation.upsert_points(points))
            self._touch([r.id for r in records])

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        with self._write, self._rw.read():
            for record in records:
                self._open().update(self._q.UpdateOperation.overwrite_payload([record.id], to_payload(record)))
            self._touch([r.id for r in records])

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if not ids:
            return
        scoped = MemoryFilter(**{**flt.__dict__, "ids": list(ids), "deleted": None})
        with self._write, self._rw.read():
            self._open().update(self._q.UpdateOperation.delete_points_by_filter(self._filter(scoped)))
            self._touch(ids)

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        """Delete a user's points, then :meth:`rewrite` the shard so their text leaves every file on disk
        (also when nothing was left to delete, with ``compact``). Other users are served meanwhile."""
        flt = MemoryFilter(user_id=user_id, deleted=None, chunks=True)
        with self._rewriting:
            with self._write, self._rw.read():
                removed = self._count(MemoryFilter(user_id=user_id, deleted=None))
                self._open().update(self._q.UpdateOperation.delete_points_by_filter(self._filter(flt)))
            if removed or compact:
                self._rewrite()
        return removed

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], flt: MemoryFilter) -> list[MemoryRecord]:
        if not ids:
            return []
        scoped = MemoryFilter(**{**flt.__dict__, "ids": list(ids)})
        with self._rw.read():
            points, _ = self._open().scroll(
                self._q.ScrollRequest(limit=len(ids), filter=self._filter(scoped), with_payload=True,
                                      with_vector=False)
            )
        by_id = {str(p.id): from_payload(p.payload or {}) for p in points}
        return [by_id[i] for i in ids if i in by_id]

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        qe = self._q
        if q.dense is not None:
            query = qe.Query.Nearest(np.asarray(q.dense, dtype=np.float32).tolist(), using=DENSE)
        elif q.text is not None:
            indices, values = sparse_query(q.text)
            if not indices:
                return []
            query = qe.Query.Nearest(qe.SparseVector(indices=indices, values=values), using=SPARSE)
        else:
            raise StoreError("StoreQuery needs dense or text")
        flt = self._filter(q.filter)

        def fetch(n: int) -> list[tuple[str, float]]:
            points = self._open().query(qe.QueryRequest(limit=n, query=query, filter=flt, with_payload=False))
            return [(str(p.id), float(p.score)) for p in points]

        with self._rw.read():
            best = top_k(fetch, q.limit)
            if not best:
                return []
            records = {
                str(p.id): from_payload(p.payload or {})
                for p in self._open().retrieve([i for i, _ in best], with_payload=True, with_vector=False)
            }
        return [ScoredRecord(records[i], score) for i, score in best if i in records]

    def scroll(
        self, flt: MemoryFilter, *, offset: int, limit: int, order: Literal["asc", "desc"] = "desc"
    ) -> list[MemoryRecord]:
        qe = self._q
        direction = qe.Direction.Desc if order == "desc" else qe.Direction.Asc

        def first(n: int) -> list[MemoryRecord]:
            points, _ = self._open().scroll(
                qe.ScrollRequest(limit=n, filter=self._filter(flt), with_payload=True, with_vector=False,
                                 order_by=qe.OrderBy(TIME_FIELD, direction=direction))
            )
            return [from_payload(p.payload or {}) for p in points]

        def at(tied: MemoryFilter) -> list[MemoryRecord]:
            n = self._count(tied)
            points, _ = self._open().scroll(
                qe.ScrollRequest(limit=max(n, 1), filter=self._filter(tied), with_payload=True, with_vector=False)
            )
            return [from_payload(p.payload or {}) for p in points]

        with self._rw.read():
            return page_by_time(first, at, flt, offset=offset, limit=limit, order=order)

    def count(self, flt: MemoryFilter) -> int:
        with self._rw.read():
            return self._count(flt)

    def _count(self, flt: MemoryFilter) -> int:
        return int(self._open().count(self._q.CountRequest(exact=True, filter=self._filter(flt))))

    def close(self) -> None:
        with self._rewriting, self._write, self._rw.write():
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None
        self._lock_file.release()
