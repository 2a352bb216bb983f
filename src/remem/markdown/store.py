"""``REMEM_STORE=markdown``: the :class:`~remem.stores.base.VectorStore` whose content is Markdown files.

Each user's memories are files under ``<home>/markdown/<user>/`` (:mod:`remem.markdown.fmt`): the files are the
store, not an export of it. Around them the store keeps a cache per user (records, vectors, file hashes;
:mod:`remem.markdown.state`) and an in-memory index (:mod:`remem.markdown.index`).

People edit the files. The store never applies an edit itself: it is bound to the :class:`~remem.writer.Writer`
(``bind_writer``), and before a read of a user whose files changed, and whenever the writer takes a user's lock,
:mod:`remem.markdown.sync` turns the edits into one ``writer.apply`` with history events by actor ``file``. The
files the store writes are fingerprinted (content hash; stat as a shortcut), so they are never mistaken for
edits. A write that would overwrite a file changed on disk but not applied (one remem cannot read) is refused
with :class:`~remem.errors.MarkdownConflictError`: nothing a person wrote is overwritten.

One process per directory (an OS lock on ``<root>/.lock``, as the embedded Qdrant store); threads share the
store. Each user has a lock: one user's write never waits for another's. All-users reads (admin: ``stats``,
the id check of inserts) see each user's state as last synced.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import RememError, StoreError, ValidationError
from ..models import MemoryRecord
from ..stores.base import SCORE_DECIMALS, MemoryFilter, ScoredRecord, StoreQuery
from ..stores.edge import _DirectoryLock
from .files import fsync_dir, markdown_files
from .fmt import PROFILE_FILE, file_of, parse
from .index import best
from .names import category_file, category_of_file, user_dir, user_of_dir
from .state import UserState

if TYPE_CHECKING:
    from .sync import SyncReport

log = logging.getLogger("remem.markdown")
CACHE_DIR = ".remem"
GITIGNORE = "# remem's cache (rebuilt from the Markdown files) and its process lock\n.remem/\n.lock\n"


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class MarkdownStore:
    """:class:`~remem.stores.base.VectorStore` over Markdown files under ``root`` (one directory per user)."""

    name = "markdown"
    #: Long memories are kept whole in one list item; BM25 covers their whole text, the dense vector their
    #: beginning (the writer adds no index chunks: they would become lines of the files).
    indexes_chunks = False

    def __init__(self, root: str | Path, dimensions: int) -> None:
        self.root = Path(root)
        self.dimensions = dimensions
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = _DirectoryLock(self.root)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE)
        self._guard = threading.Lock()
        self._users: dict[str, UserState] = {}
        self._local = threading.local()
        self._syncer: Any = None
        self._open = True
        self._skipped: set[str] = set()  # directory names that are not users (warned once)
        self._finish_interrupted_writes()

    def _finish_interrupted_writes(self) -> None:
        """Roll forward every user's write that a crash left between cache and files (see
        :mod:`remem.markdown.state`), so the files are right before anyone reads them."""
        cache = self.root / CACHE_DIR
        for folder in sorted(cache.iterdir()) if cache.is_dir() else []:
            if UserState.interrupted(folder):
                try:
                    self._state(user_of_dir(folder.name))
                except ValidationError:
                    log.warning("markdown store: %s is not a cache folder remem writes; skipped", folder)

    # -- users -----------------------------------------------------------------------------------------------
    def user_path(self, user_id: str) -> Path:
        """The directory of a user's files (validated; never outside :attr:`root`)."""
        return user_dir(self.root, user_id)

    def _state(self, user_id: str) -> UserState:
        if not self._open:
            raise StoreError(f"the Markdown store at {self.root} is closed")
        with self._guard:
            state = self._users.get(user_id)
            if state is None:
                files = self.user_path(user_id)
                state = UserState.open(user_id, files, self.root / CACHE_DIR / files.name, self.dimensions)
                self._users[user_id] = state
            return state

    @contextmanager
    def _locked(self, user_id: str) -> Iterator[UserState]:
        while True:
            state = self._state(user_id)
            with state.lock:
                if self._users.get(user_id) is state:  # not erased while we waited
                    yield state
                    return

    def users(self) -> list[str]:
        """Every user with files or a cache here (directory names remem did not write are skipped)."""
        names = {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        cache = self.root / CACHE_DIR
        if cache.is_dir():
            names |= {p.name for p in cache.iterdir() if p.is_dir()}
        out = set(self._users)
        for name in names:
            try:
                out.add(user_of_dir(name))
            except ValidationError:
                if name not in self._skipped:
                    self._skipped.add(name)
                    log.warning("markdown store: %s is not a user directory remem writes; skipped", self.root / name)
        return sorted(out)

    def _user_ids(self, flt: MemoryFilter) -> list[str]:
        return [flt.user_id] if flt.user_id is not None else self.users()

    # -- sync (see remem.markdown.sync) ------------------------------------------------------------------------
    def bind_writer(self, writer: Any) -> Callable[[str], object]:
        """Route hand edits through ``writer`` (called by :class:`~remem.writer.Writer` itself); returns the step
        the writer runs when it takes a user's lock."""
        from .sync import Syncer

        self._syncer = Syncer(writer, self)
        return self.sync

    def _busy(self) -> set[str]:
        busy: set[str] | None = getattr(self._local, "busy", None)
        if busy is None:
            busy = self._local.busy = set()
        return busy

    def sync(self, user_id: str) -> SyncReport | None:
        """Apply the user's hand edits now (None when this thread is already syncing that user, or no writer is
        bound). Raises what the write path raises."""
        busy = self._busy()
        if self._syncer is None or user_id in busy:
            return None
        busy.add(user_id)
        try:
            report: SyncReport = self._syncer.sync(user_id)
            return report
        finally:
            busy.discard(user_id)

    def _before(self, user_id: str | None) -> None:
        """Before a read: sync the user if their files changed (cheap when they did not: a stat per file).

        Not under the user's write lock (the writer synced when it took it; recovery must not apply edits
        mid-way). A sync that fails (an embedder that is down) is logged and the read serves the last synced
        state; the edits stay on disk and are applied by the next sync."""
        syncer = self._syncer
        if user_id is None or syncer is None or user_id in self._busy() or syncer.holds_lock(user_id):
            return
        with self._locked(user_id) as state:
            stale = state.adopted or bool(state.pending_edits())
        if stale:
            try:
                self.sync(user_id)
            except RememError as exc:
                log.warning("markdown store: could not apply the edited files of a user before a read (%s: %s); "
                            "serving their last synced state", type(exc).__name__, exc.code)

    def state(self, user_id: str) -> AbstractContextManager[UserState]:
        """The user's state, locked (for :mod:`remem.markdown.sync`)."""
        return self._locked(user_id)

    # -- checks ----------------------------------------------------------------------------------------------
    def _check(self, record: MemoryRecord) -> None:
        try:
            canonical = str(uuid.UUID(record.id))
        except ValueError:
            canonical = ""
        if canonical != record.id:
            raise ValidationError(f"memory id {record.id!r} is not a lower-case UUID", memory_id=record.id)
        for c in record.categories:
            if c != c.strip().lower() or not c or "\n" in c or "\r" in c:
                raise ValidationError(f"category {c!r} cannot be a Markdown heading: categories are lower-case, "
                                      "trimmed, on one line", category=c)
            category_file(c)

    # -- writes ----------------------------------------------------------------------------------------------
    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if not records:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(records), self.dimensions):
            raise StoreError(f"expected {len(records)} vectors of {self.dimensions} dimensions, got {matrix.shape}")
        for r in records:
            self._check(r)
        for user_id, chosen in self._by_user(records).items():
            with self._locked(user_id) as state:
                recs, vecs, touched = dict(state.records), dict(state.vectors), set()
                for i in chosen:
                    r = records[i]
                    if r.id in recs:
                        touched.add(file_of(recs[r.id]))
                    recs[r.id], vecs[r.id] = r, _unit(matrix[i])
                    touched.add(file_of(r))
                state.commit(recs, vecs, touched)

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        for r in records:
            self._check(r)
        for user_id, chosen in self._by_user(records).items():
            with self._locked(user_id) as state:
                recs, touched = dict(state.records), set()
                for i in chosen:
                    r = records[i]
                    if r.id in recs:
                        touched |= {file_of(recs[r.id]), file_of(r)}
                        recs[r.id] = r
                if touched:
                    state.commit(recs, state.vectors, touched)

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if not ids:
            return
        scoped = replace(flt, ids=list(ids), deleted=None)
        for user_id in self._user_ids(flt):
            with self._locked(user_id) as state:
                cols = state.columns()
                gone = [cols.records[i] for i in np.flatnonzero(cols.mask(scoped))]
                if gone:
                    recs = {k: v for k, v in state.records.items() if k not in {r.id for r in gone}}
                    vecs = {k: v for k, v in state.vectors.items() if k in recs}
                    state.commit(recs, vecs, {file_of(r) for r in gone})

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        """Remove the user's directory (every file in it) and cache; returns how many records they had."""
        del compact  # files are removed outright: nothing to compact
        with self._locked(user_id) as state:
            removed = len(state.records)
            for path in (state.files, state.cache):
                if path.exists():
                    shutil.rmtree(path)
            fsync_dir(self.root)
            with self._guard:
                self._users.pop(user_id, None)
        return removed

    @staticmethod
    def _by_user(records: Sequence[MemoryRecord]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            out.setdefault(r.user_id, []).append(i)
        return out

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], flt: MemoryFilter) -> list[MemoryRecord]:
        if not ids:
            return []
        self._before(flt.user_id)
        scoped = replace(flt, ids=list(ids))
        found: dict[str, MemoryRecord] = {}
        for user_id in self._user_ids(flt):
            with self._locked(user_id) as state:
                cols = state.columns()
                found.update((cols.records[i].id, cols.records[i]) for i in np.flatnonzero(cols.mask(scoped)))
        return [found[i] for i in ids if i in found]

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        if q.dense is None and q.text is None:
            raise StoreError("StoreQuery needs dense or text")
        self._before(q.filter.user_id)
        hits: list[tuple[MemoryRecord, float]] = []
        for user_id in self._user_ids(q.filter):
            with self._locked(user_id) as state:
                cols = state.columns()
                mask = cols.mask(q.filter)
                idx, scores = cols.dense(mask, q.dense) if q.dense is not None else cols.bm25(mask, q.text or "")
                hits += [(cols.records[i], s) for i, s in best(idx, scores, q.limit)]
        hits.sort(key=lambda h: (-round(h[1], SCORE_DECIMALS), h[0].id))
        return [ScoredRecord(r, s) for r, s in hits[: max(q.limit, 0)]]

    def scroll(self, flt: MemoryFilter, *, offset: int, limit: int,
               order: Literal["asc", "desc"] = "desc") -> list[MemoryRecord]:
        if limit <= 0:
            return []
        self._before(flt.user_id)
        rows: list[tuple[int, str, MemoryRecord]] = []
        for user_id in self._user_ids(flt):
            with self._locked(user_id) as state:
                cols = state.columns()
                idx = np.flatnonzero(cols.mask(flt))
                ranked = idx[np.lexsort((idx, cols.t[idx]))]  # time, then id (records are sorted by id)
                if order == "desc":
                    ranked = ranked[::-1]
                if flt.user_id is not None:
                    ranked = ranked[offset:offset + limit]
                rows += [(int(cols.t[i]), cols.records[i].id, cols.records[i]) for i in ranked]
        if flt.user_id is not None:
            return [r for _, _, r in rows]
        rows.sort(key=lambda x: (x[0], x[1]), reverse=order == "desc")
        return [r for _, _, r in rows[offset:offset + limit]]

    def count(self, flt: MemoryFilter) -> int:
        self._before(flt.user_id)
        total = 0
        for user_id in self._user_ids(flt):
            with self._locked(user_id) as state:
                total += int(state.columns().mask(flt).sum())
        return total

    # -- Markdown-only reads -----------------------------------------------------------------------------------
    def profile(self, user_id: str, *, limit: int | None = None) -> list[MemoryRecord]:
        """The memories of the user's ``profile.md`` (their core facts, hand edits included), newest first."""
        self._before(user_id)
        with self._locked(user_id) as state:
            chosen = [r for r in state.records.values() if file_of(r) == PROFILE_FILE]
        chosen.sort(key=lambda r: (r.observed_at or r.created_at, r.id), reverse=True)
        return chosen[:limit] if limit is not None else chosen

    def locate(self, user_id: str) -> dict[str, tuple[str, int]]:
        """Where each memory of the user stands in the files: id -> (file name, line)."""
        self._before(user_id)
        out: dict[str, tuple[str, int]] = {}
        with self._locked(user_id) as state:
            for name, path in sorted(markdown_files(state.files).items()):
                try:
                    text = path.read_text(encoding="utf-8-sig")
                    category = None if name in (PROFILE_FILE,) else _category_or_none(name)
                except (OSError, UnicodeDecodeError):
                    continue
                for item in parse(text, name=name, path=str(path), category=category).items:
                    if item.id is not None:
                        out.setdefault(item.id, (name, item.line))
        return out

    def close(self) -> None:
        with self._guard:
            self._open = False
            self._users.clear()
        self._lock_file.release()


def _category_or_none(name: str) -> str | None:
    try:
        return category_of_file(name)
    except ValidationError:
        return None
