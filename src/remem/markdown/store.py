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
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import MarkdownFormatError, RememError, StoreError, ValidationError
from ..models import MemoryRecord
from ..stores.base import SCORE_DECIMALS, MemoryFilter, ScoredRecord, StoreQuery
from ..stores.edge import _DirectoryLock
from .fmt import PROFILE_FILE, file_of, parse
from .folder import Folder, erase
from .index import best
from .names import category_file, category_of_file, user_dir, user_of_dir
from .state import CACHE_DIR, StaleFile, UserState

if TYPE_CHECKING:
    from .sync import SyncReport

log = logging.getLogger("remem.markdown")
#: Attempts of one write when it finds a file edited by hand meanwhile (each syncs the edit first).
WRITE_ATTEMPTS = 4
_Next = tuple[dict[str, MemoryRecord], dict[str, np.ndarray], set[str]]
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
        try:
            with Folder.at(self.root) as top:
                top.create(".gitignore", GITIGNORE.encode())  # once; never through a link
            Folder.at(self.root, CACHE_DIR).close()  # MarkdownFormatError if .remem is a link
        except BaseException:
            self._lock_file.release()
            raise
        self._guard = threading.Lock()
        self._users: dict[str, UserState] = {}
        self._local = threading.local()
        self._syncer: Any = None
        self._open = True
        self._skipped: set[str] = set()  # directory names that are not users (warned once)
        self._refused: set[str] = set()  # users whose directory is a link (warned once)
        self._finish_interrupted_writes()

    def _finish_interrupted_writes(self) -> None:
        """Roll forward every user's write that a crash left between cache and files (see
        :mod:`remem.markdown.state`), so the files are right before anyone reads them."""
        for name in sorted(self._names(self.root / CACHE_DIR)):
            try:
                if UserState.interrupted(self.root, name):
                    self._state(user_of_dir(name))
            except MarkdownFormatError as exc:
                log.warning("markdown store: %s; the user's data is not read until it is fixed", exc)
            except ValidationError:
                log.warning("markdown store: %s is not a cache folder remem writes; skipped",
                            self.root / CACHE_DIR / name)

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
                state = UserState.open(user_id, self.root, self.user_path(user_id).name, self.dimensions)
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

    @staticmethod
    def _names(directory: Path) -> set[str]:
        """Directory entries that may be users: directories, and links (listed so that they can be erased; their
        data is refused, never followed)."""
        try:
            with os.scandir(directory) as it:
                return {e.name for e in it if not e.name.startswith(".") and
                        (e.is_dir(follow_symlinks=False) or e.is_symlink())}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def users(self) -> list[str]:
        """Every user with files or a cache here (directory names remem did not write are skipped; a user whose
        directory is a link is listed, and refused by every read or write of theirs)."""
        names = self._names(self.root)
        if not (self.root / CACHE_DIR).is_symlink():
            names |= self._names(self.root / CACHE_DIR)
        out = set(self._users)
        for name in names:
            try:
                out.add(user_of_dir(name))
            except ValidationError:
                if name not in self._skipped:
                    self._skipped.add(name)
                    log.warning("markdown store: %s is not a user directory remem writes; skipped", self.root / name)
        return sorted(out)

    def _states(self, flt: MemoryFilter) -> Iterator[UserState]:
        """The locked state of the filter's user, or of every user (admin reads: a user whose directory is a
        link is skipped with a warning; their own reads raise MarkdownFormatError)."""
        if flt.user_id is not None:
            with self._locked(flt.user_id) as state:
                yield state
            return
        for user_id in self.users():
            try:
                cm = self._locked(user_id)
                state = cm.__enter__()
            except MarkdownFormatError as exc:
                if user_id not in self._refused:
                    self._refused.add(user_id)
                    log.warning("markdown store: %s; that user is left out of reads over all users", exc)
                continue
            try:
                yield state
            finally:
                cm.__exit__(None, None, None)

    # -- sync (see remem.markdown.sync) ------------------------------------------------------------------------
    def bind_writer(self, writer: Any) -> Callable[[str], object]:
        """Route hand edits through ``writer`` (called by :class:`~remem.writer.Writer` itself); returns the step
        the writer runs when it takes a user's lock."""
        from .sync import Syncer

        self._syncer = Syncer(writer, self)
        return self._writer_step

    def _writer_step(self, user_id: str) -> SyncReport | None:
        """What the writer runs when it takes a user's lock: the edits on disk, and a bounded number of displaced
        saves (a person saving faster than a sync round does not hold the write up; the rest come next)."""
        return self.sync(user_id, drain=False)

    def _busy(self) -> set[str]:
        busy: set[str] | None = getattr(self._local, "busy", None)
        if busy is None:
            busy = self._local.busy = set()
        return busy

    def sync(self, user_id: str, *, rounds: int | None = None, drain: bool = True) -> SyncReport | None:
        """Apply the user's hand edits now (None when this thread is already syncing that user, or no writer is
        bound); ``rounds``: of applying the edits on disk (:data:`remem.markdown.sync.ROUNDS`); ``drain``: every
        displaced save too (else a bounded number, see :data:`remem.markdown.sync.ORPHAN_ROUNDS`). Raises what the
        write path raises."""
        busy = self._busy()
        if self._syncer is None or user_id in busy:
            return None
        busy.add(user_id)
        try:
            report: SyncReport = (self._syncer.sync(user_id, drain=drain) if rounds is None
                                  else self._syncer.sync(user_id, rounds=rounds, drain=drain))
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
            stale = state.adopted or bool(state.pending_edits()) or bool(state.orphans)
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
    def _write(self, user_id: str, build: Callable[[UserState], _Next | None]) -> None:
        """Commit ``build(state)`` (records, vectors, touched files; None: nothing to write) for one user.

        A file found changed by a hand edit not synced yet (:class:`~remem.markdown.state.StaleFile`) is synced
        through the writer first — its lines are recorded as the person's — then the change is built again on
        top and retried (:data:`WRITE_ATTEMPTS` in all). Saves displaced by the write itself are applied right
        after it (:mod:`remem.markdown.orphans`)."""
        for attempt in range(WRITE_ATTEMPTS):
            with self._locked(user_id) as state:
                change = build(state)
                if change is None:
                    return
                # the last attempt, or a write of the sync itself, displaces a newer edit instead of refusing it
                displace = self._syncer is not None and (attempt == WRITE_ATTEMPTS - 1 or user_id in self._busy())
                try:
                    state.commit(*change, displace=displace)
                except StaleFile:
                    if attempt == WRITE_ATTEMPTS - 1 or not self._can_sync(user_id):
                        raise
                    committed = False
                else:
                    committed, orphans = True, bool(state.orphans)
            if not committed:
                self.sync(user_id, rounds=1, drain=False)  # what is on disk now; newer saves: the next attempt
                continue
            if orphans and self._can_sync(user_id):
                try:
                    self.sync(user_id, rounds=1, drain=False)
                except RememError as exc:  # kept: the next sync applies them
                    log.warning("markdown store: could not apply a save displaced by a write yet (%s: %s)",
                                type(exc).__name__, exc.code)
            return

    def _can_sync(self, user_id: str) -> bool:
        return self._syncer is not None and user_id not in self._busy()

    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if not records:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(records), self.dimensions):
            raise StoreError(f"expected {len(records)} vectors of {self.dimensions} dimensions, got {matrix.shape}")
        for r in records:
            self._check(r)
        for user_id, chosen in self._by_user(records).items():
            def build(state: UserState, chosen: list[int] = chosen) -> _Next:
                recs, vecs, touched = dict(state.records), dict(state.vectors), set()
                for i in chosen:
                    r = records[i]
                    if r.id in recs:
                        touched.add(file_of(recs[r.id]))
                    recs[r.id], vecs[r.id] = r, _unit(matrix[i])
                    touched.add(file_of(r))
                return recs, vecs, touched

            self._write(user_id, build)

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        for r in records:
            self._check(r)
        for user_id, chosen in self._by_user(records).items():
            def build(state: UserState, chosen: list[int] = chosen) -> _Next | None:
                recs, touched = dict(state.records), set()
                for i in chosen:
                    r = records[i]
                    if r.id in recs:
                        touched |= {file_of(recs[r.id]), file_of(r)}
                        recs[r.id] = r
                return (recs, state.vectors, touched) if touched else None

            self._write(user_id, build)

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if not ids:
            return
        scoped = replace(flt, ids=list(ids), deleted=None)

        def build(state: UserState) -> _Next | None:
            cols = state.columns()
            gone = {cols.records[i].id: cols.records[i] for i in np.flatnonzero(cols.mask(scoped))}
            if not gone:
                return None
            recs = {k: v for k, v in state.records.items() if k not in gone}
            vecs = {k: v for k, v in state.vectors.items() if k in recs}
            return recs, vecs, {file_of(r) for r in gone.values()}

        for user_id in [flt.user_id] if flt.user_id is not None else self.users():
            try:
                self._write(user_id, build)
            except MarkdownFormatError:
                if flt.user_id is not None:
                    raise

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        """Remove the user's directory (every file in it) and cache; returns how many records they had.

        Always finishes (an erasure that started must end): a directory or cache that is a link is unlinked —
        never what it points to — and a cache that cannot be read is removed all the same (0 records counted)."""
        del compact  # files are removed outright: nothing to compact
        name = self.user_path(user_id).name
        try:
            state: UserState | None = self._state(user_id)
        except (MarkdownFormatError, StoreError):
            state = None
        with state.lock if state is not None else nullcontext():
            removed = len(state.records) if state is not None else 0
            erase(self.root, name)
            erase(self.root, CACHE_DIR, name)
            with self._guard:
                dropped = self._users.pop(user_id, None)
            if dropped is not None:
                dropped.close()
                dropped.orphans.clear()  # their saves are erased with them
            if self._syncer is not None:
                self._syncer.written.forget(user_id)
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
        for state in self._states(flt):
            cols = state.columns()
            found.update((cols.records[i].id, cols.records[i]) for i in np.flatnonzero(cols.mask(scoped)))
        return [found[i] for i in ids if i in found]

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        if q.dense is None and q.text is None:
            raise StoreError("StoreQuery needs dense or text")
        self._before(q.filter.user_id)
        hits: list[tuple[MemoryRecord, float]] = []
        for state in self._states(q.filter):
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
        for state in self._states(flt):
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
        for state in self._states(flt):
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
            for name, data in state.contents().items():
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    continue
                category = None if name in (PROFILE_FILE,) else _category_or_none(name)
                for item in parse(text, name=name, path=str(state.files / name), category=category).items:
                    if item.id is not None:
                        out.setdefault(item.id, (name, item.line))
        return out

    def close(self) -> None:
        """Apply what is left of saves displaced by writes (else keep each beside its file, see
        :meth:`~remem.markdown.sync.Syncer.sync`), then release the directory."""
        from .sync import keep

        with self._guard:
            states = list(self._users.values())
        for state in states:
            with state.lock:
                state.close()
                left = len(state.orphans)
            while left and self._can_sync(state.user_id):  # each sync applies some; stop when one applies none
                try:
                    self.sync(state.user_id)
                except RememError as exc:
                    log.warning("markdown store: could not apply a displaced save on close (%s: %s)",
                                type(exc).__name__, exc.code)
                    break
                with state.lock:
                    left, before = len(state.orphans), left
                if left >= before:
                    break
            with state.lock:
                for orphan in state.orphans:
                    keep(state, orphan.name, orphan.theirs, [])
                state.orphans.clear()
        with self._guard:
            self._open = False
            self._users.clear()
        self._lock_file.release()


def _category_or_none(name: str) -> str | None:
    try:
        return category_of_file(name)
    except ValidationError:
        return None
