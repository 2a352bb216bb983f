"""One user's part of the Markdown store: the records, their vectors, the files as remem last wrote them, and the
cache that makes a restart cheap.

On disk, per user::

    <root>/<user>/*.md                  the memories (the store's content; people read and edit these)
    <root>/.remem/<user>/state.npz      cache: every record (the last good state), vectors, file hashes
    <root>/.remem/<user>/committed      the cache generation whose files are completely written

Every file is reached through a :class:`~remem.markdown.folder.Folder`: a user or cache directory, or a file in it,
that is a symbolic link is refused (``MarkdownFormatError`` naming it; a linked ``.md`` file is reported as a file
remem cannot read), never followed.

A write (:meth:`UserState.commit`) is crash-safe without a journal of its own: it first replaces the cache
(new records, vectors and file hashes, plus each touched file's *previous* hash as ``pending``), then writes the
files atomically, then the ``committed`` marker. A crash in between leaves ``committed`` behind the cache: on
the next open, a touched file that still holds its previous content is rewritten from the cache (the write is
rolled forward); one that holds anything else was edited by a person meanwhile and is left for the sync.

A write never overwrites a person's edit: right before it, each touched file is read and compared with what
remem last wrote (:class:`StaleFile` if it changed: the store syncs the edit, then retries), and each file is then
swapped in so that whatever was saved after that check is displaced, not lost: it is kept as an
:class:`~remem.markdown.orphans.Orphan` for the sync to apply.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MarkdownConflictError, MarkdownFormatError, StoreError
from ..models import MemoryRecord
from .files import Stamp, sha256
from .fmt import PROFILE_FILE, FileProblem, file_of, render
from .folder import Displaced, Folder, Temp, read_whole, refused
from .index import Columns
from .orphans import Orphan, Watches
from .versions import Version, Versions

log = logging.getLogger("remem.markdown")
CACHE_DIR = ".remem"
CACHE_FILE = "state.npz"
COMMITTED = "committed"
#: The "content hash" under which a link or special file in a user's directory is recorded as unreadable.
LINK = "link"


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def _sha(data: bytes | None) -> str | None:
    return sha256(data) if data is not None else None


class StaleFile(MarkdownConflictError):
    """A file changed on disk since remem last read it and the change is not synced yet: the store syncs it and
    retries the write (raised as is where nothing can sync: the store used without a writer)."""


class UserState:
    """The store's view of one user; every method is called with :attr:`lock` held."""

    def __init__(self, user_id: str, root: Path, name: str, dimensions: int) -> None:
        self.user_id, self.root, self.name, self.dimensions = user_id, root, name, dimensions
        self.files, self.cache = root / name, root / CACHE_DIR / name
        self.lock = threading.RLock()
        self.records: dict[str, MemoryRecord] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.stamps: dict[str, Stamp] = {}
        self.generation = 0
        #: Loaded from files without a cache (copied in, cloned, cache lost): not yet reconciled with history.
        self.adopted = False
        #: Files that could not be read: name -> (content hash, problems). Writes over them are refused.
        self.broken: dict[str, tuple[str, list[FileProblem]]] = {}
        #: Saves a person made while remem replaced the file, to apply (see remem.markdown.orphans).
        self.orphans: list[Orphan] = []
        self.watches = Watches()
        #: Recent contents of each file, to find the version a person's save was made from.
        self.versions = Versions()
        self._accepted: dict[str, bytes | None] = {}
        self._columns: Columns | None = None

    def folder(self, *, create: bool = False) -> Folder | None:
        """The user's directory (None if missing); MarkdownFormatError if it is a link."""
        return Folder.open(self.root, self.name, create=create)

    def cache_folder(self, *, create: bool = False) -> Folder | None:
        return Folder.open(self.root, CACHE_DIR, self.name, create=create)

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, user_id: str, root: Path, name: str, dimensions: int) -> UserState:
        """Load a user's state. MarkdownFormatError if their directory or cache directory is a link; StoreError
        if the cache cannot be read."""
        state = cls(user_id, root, name, dimensions)
        with ExitStack() as stack:
            folder = state.folder()
            if folder is not None:
                stack.enter_context(folder)
            cache = state.cache_folder()
            fh = None
            if cache is not None:
                stack.enter_context(cache)
                fh = cache.open_file(CACHE_FILE)
            if cache is not None and fh is not None:
                with fh:
                    state._load(fh, folder, cache)
            else:
                state.adopted = folder is not None and bool(folder.entries()[0])
        return state

    @staticmethod
    def interrupted(root: Path, name: str) -> bool:
        """Whether the user's cache is ahead of its ``committed`` marker (a write a crash interrupted)."""
        cache = Folder.open(root, CACHE_DIR, name)
        if cache is None:
            return False
        with cache:
            try:
                fh = cache.open_file(CACHE_FILE)
                if fh is None:
                    return False
                with fh, np.load(fh, allow_pickle=False) as z:
                    generation = int(json.loads(bytes(z["manifest"]))["generation"])
                return generation > int(cache.read(COMMITTED) or 0)
            except (OSError, ValueError, KeyError):
                return True  # let the full load report it

    def _load(self, fh: Any, folder: Folder | None, cache: Folder) -> None:
        path = self.cache / CACHE_FILE
        try:
            with np.load(fh, allow_pickle=False) as z:
                manifest = json.loads(bytes(z["manifest"]))
                records = json.loads(bytes(z["records"]))
                vector_ids = json.loads(bytes(z["vector_ids"]))
                vectors = np.array(z["vectors"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"cannot read the Markdown store's cache {path}: {exc} (remove it: it is rebuilt from "
                             "the files)", path=str(path)) from exc
        if len(vector_ids) and vectors.shape[1] != self.dimensions:
            raise StoreError(
                f"the Markdown store's cache {path} holds {vectors.shape[1]}-d vectors but the embedder makes "
                f"{self.dimensions}-d ones; use the embedder it was built with, or export and import into a new "
                "REMEM_HOME", stored=int(vectors.shape[1]), embedder=self.dimensions)
        self.records = {r.id: r for r in (MemoryRecord.model_validate(x) for x in records)}
        self.vectors = {i: vectors[n] for n, i in enumerate(vector_ids)}
        self.generation = int(manifest["generation"])
        self.stamps = {name: Stamp(sha) for name, sha in manifest["files"].items()}
        if int(cache.read(COMMITTED) or 0) < self.generation:
            self._roll_forward(manifest.get("pending") or {}, folder, cache)

    def _roll_forward(self, pending: Mapping[str, str | None], folder: Folder | None, cache: Folder) -> None:
        layout = self.layout(self.records.values())
        with ExitStack() as stack:
            for name, before in pending.items():
                try:
                    now = _sha(folder.read(name)) if folder is not None else None
                except MarkdownFormatError:
                    continue  # a link: never followed nor replaced (the sync reports it)
                if now != before:
                    continue  # the new content (done) or a person's edit (the sync's business)
                data = self._content(name, layout.get(name, []))
                if data is None:
                    if folder is not None:
                        folder.remove(name)
                    continue
                if folder is None:
                    folder = stack.enter_context(Folder.at(self.root, self.name))
                folder.write(name, data)
        cache.write(COMMITTED, str(self.generation).encode())

    # -- the index -------------------------------------------------------------------------------------------
    def columns(self) -> Columns:
        if self._columns is None:
            self._columns = Columns(list(self.records.values()), self.vectors, self.dimensions)
        return self._columns

    # -- files -----------------------------------------------------------------------------------------------
    @staticmethod
    def layout(records: Iterable[MemoryRecord]) -> dict[str, list[MemoryRecord]]:
        out: dict[str, list[MemoryRecord]] = {}
        for r in records:
            out.setdefault(file_of(r), []).append(r)
        return out

    @staticmethod
    def _content(name: str, records: list[MemoryRecord]) -> bytes | None:
        if not records and name != PROFILE_FILE:
            return None
        title = records[0].categories[0] if records and records[0].categories else None
        return render(name, records, title=title).encode("utf-8")

    def contents(self, names: Iterable[str] | None = None) -> dict[str, bytes]:
        """The bytes of the user's ``*.md`` files (or of ``names``), links and special files left out."""
        folder = self.folder()
        if folder is None:
            return {}
        out: dict[str, bytes] = {}
        with folder:
            for name in sorted(folder.entries()[0] if names is None else names):
                try:
                    data = folder.read(name)
                except MarkdownFormatError:
                    continue
                if data is not None:
                    out[name] = data
        return out

    def changed(self) -> dict[str, bytes | None]:
        """Files whose content differs from what the store last wrote or accepted: name -> bytes (None: gone).
        Unchanged files are recognised by their stat where possible (see :class:`~.files.Stamp`). A link or
        special file is recorded in :attr:`broken` instead. Collects late writes to displaced files first."""
        self._late(self.watches.check())
        folder = self.folder()
        out: dict[str, bytes | None] = {}
        with folder or nullcontext():
            disk, odd = folder.entries() if folder is not None else ({}, {})
            self._note_odd(odd)
            for name in sorted(set(disk) | set(self.stamps)):
                st, stamp = disk.get(name), self.stamps.get(name)
                if name in odd:
                    continue
                if st is None or folder is None:
                    out[name] = None
                    continue
                if stamp is not None and stamp.same_stat(st):
                    continue
                try:
                    found = folder.read_open(name)
                except MarkdownFormatError:
                    continue  # became a link since the listing: recorded by the next call
                if found is None:
                    out[name] = None
                    continue
                data, fd, st = found
                if stamp is not None and sha256(data) == stamp.sha:
                    os.close(fd)
                    self.stamps[name] = Stamp(stamp.sha, st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns())
                else:
                    self.versions.add(name, data, st, fd=fd)
                    out[name] = data
        return out

    def _note_odd(self, odd: Mapping[str, str]) -> None:
        for name, what in odd.items():
            if self.broken.get(name, ("", []))[0] != LINK:
                problem = FileProblem.model_validate(refused(self.files / name, what).context["problems"][0])
                log.warning("markdown store: %s (left as it is, never followed)", problem)
                self.broken[name] = (LINK, [problem])
        for name in [n for n, (sha, _) in self.broken.items() if sha == LINK and n not in odd]:
            del self.broken[name]

    def next_orphan(self, edits: Mapping[str, bytes | None]) -> Orphan | None:
        """The displaced save to apply before ``edits`` (taken off :attr:`orphans`): the oldest, if it was
        written before every edit on disk — a later save may have been made from it, so it goes first."""
        if not self.orphans:
            return None
        oldest = min(self.orphans, key=lambda o: o.mtime_ns)
        edited = [v.mtime_ns if (v := self.versions.find(n, d) if d is not None else None) is not None
                  else time.time_ns() for n, d in edits.items()]
        if edited and oldest.mtime_ns > min(edited):
            return None
        self.orphans.remove(oldest)
        return oldest

    def pending_edits(self) -> dict[str, bytes | None]:
        """:meth:`changed` files, minus those already known to be unreadable in their current content."""
        return {n: d for n, d in self.changed().items()
                if not (n in self.broken and d is not None and sha256(d) == self.broken[n][0])}

    @contextmanager
    def accepting(self, contents: Mapping[str, bytes | None]) -> Iterator[None]:
        """Take these on-disk contents as the store's own while the sync applies them (so its writes may
        replace them). If applying fails, the person's contents are written back and nothing is accepted."""
        saved = dict(self.stamps)
        for name, data in contents.items():
            if data is None:
                self.stamps.pop(name, None)
            else:
                self.stamps[name] = Stamp(sha256(data))
        accepted = {name: self.stamps.get(name) for name in contents}
        self._accepted = dict(contents)
        try:
            yield
        except BaseException:
            folder = self.folder(create=True) if contents else None
            with folder or nullcontext():
                for name, data in contents.items():  # put back what a person wrote, if the store replaced it
                    assert folder is not None
                    wrote = self.stamps.get(name)
                    try:
                        on_disk = _sha(folder.read(name))
                    except MarkdownFormatError:
                        continue
                    if on_disk == (wrote.sha if wrote else None) and on_disk != _sha(data):
                        if data is None:
                            folder.remove(name)
                        else:
                            folder.write(name, data)
                    # else a newer save is on disk: what remem wrote stays its own (the sync reads that save next)
                    if on_disk == (wrote.sha if wrote else None) or self.stamps.get(name) == accepted[name]:
                        self._restamp(name, saved.get(name))  # the person's content is there, unapplied
            raise
        finally:
            self._accepted = {}

    def _restamp(self, name: str, stamp: Stamp | None) -> None:
        if stamp is None:
            self.stamps.pop(name, None)
        else:
            self.stamps[name] = stamp

    def _expect(self, folder: Folder | None, names: Iterable[str], *, displace: bool) -> dict[str, bytes | None]:
        """What each of ``names`` should hold — what remem last wrote or accepted there — checked against the disk
        (the compare of the compare-and-swap). A file edited meanwhile raises :class:`StaleFile` (the store syncs
        the edit, then retries), or with ``displace`` is let through: the write displaces the edit, which becomes
        an :class:`~remem.markdown.orphans.Orphan` (applied by the sync, never lost). MarkdownConflictError for a
        file remem cannot read (a link, a broken file): it is never overwritten."""
        bases: dict[str, bytes | None] = {}
        for name in names:
            path, stamp, known = self.files / name, self.stamps.get(name), self.broken.get(name)
            try:
                data = folder.read(name) if folder is not None else None
            except MarkdownFormatError as exc:
                raise MarkdownConflictError(f"{exc}; nothing was written", path=str(path),
                                            problems=exc.context["problems"]) from None
            expected = stamp.sha if stamp else None
            if _sha(data) != expected:
                if known is not None and known[0] == _sha(data):
                    raise self._conflict(path, known[1])
                base = self._written(name) if displace else None
                if not displace or _sha(base) != expected:
                    raise StaleFile(f"{path} changed on disk since remem last read it (a hand edit that is not "
                                    "synced yet); nothing was written: retry", path=str(path), problems=[])
                data = base
            bases[name] = data
        return bases

    def _written(self, name: str) -> bytes | None:
        """What remem last wrote or accepted in ``name``: the accepted edit during a sync, else the rendering of
        the records the file holds (the caller checks it against the stamp)."""
        if name in self._accepted and (self.stamps[name].sha if name in self.stamps else None) == \
                _sha(self._accepted[name]):
            return self._accepted[name]  # not written over by remem since it was accepted
        return self._content(name, [r for r in self.records.values() if file_of(r) == name])

    @staticmethod
    def _conflict(path: Path, problems: list[FileProblem]) -> MarkdownConflictError:
        detail = "; ".join(str(p) for p in problems[:3]) or "a hand edit that is not synced yet"
        return MarkdownConflictError(
            f"{path} changed on disk since remem last read it ({detail}); nothing was written: fix the file, then "
            "retry", path=str(path), problems=[p.model_dump() for p in problems])

    # -- writes ----------------------------------------------------------------------------------------------
    def commit(self, records: dict[str, MemoryRecord], vectors: dict[str, np.ndarray], touched: set[str],
               *, force: Iterable[str] = (), displace: bool = False) -> None:
        """Make ``records``/``vectors`` the user's state: re-render the ``touched`` files (and ``force``-d ones,
        the profile on the first write), refusing to overwrite a file that changed on disk (:class:`StaleFile`,
        MarkdownConflictError; ``displace``: see :meth:`_expect`), then persist (see the module docstring for the
        crash-safe order)."""
        names = set(touched) | set(force) | ({PROFILE_FILE} if PROFILE_FILE not in self.stamps else set())
        layout = self.layout(r for r in records.values() if file_of(r) in names)
        contents: dict[str, bytes | None] = {}
        for name in sorted(names):
            data = self._content(name, layout.get(name, []))
            before = self.stamps.get(name)
            if (before.sha if before else None) != _sha(data):
                contents[name] = data
        folder = self.folder(create=True) if contents else None
        with folder or nullcontext():
            bases = self._expect(folder, contents, displace=displace)
            temps: dict[str, Temp] = {}
            try:
                for name, data in contents.items():
                    if data is not None:
                        assert folder is not None
                        temps[name] = folder.temp(name, data)
                generation = self.generation + 1
                files = {n: s.sha for n, s in self.stamps.items()}
                for name, data in contents.items():
                    if data is None:
                        files.pop(name, None)
                    else:
                        files[name] = sha256(data)
                pending = {n: (self.stamps[n].sha if n in self.stamps else None) for n in contents}
                self._save(records, vectors, files, pending, generation)
                self.generation = generation
                self.records, self.vectors, self._columns = records, vectors, None
                for name, data in contents.items():
                    assert folder is not None
                    if data is None:
                        displaced = folder.take(name)
                        self.stamps.pop(name, None)
                        self._displaced(name, bases[name], displaced)
                        self.versions.gone(name)
                    else:
                        temp = temps.pop(name)
                        try:
                            displaced = folder.swap(temp.name, name)
                        except BaseException:
                            os.close(temp.fd)
                            raise
                        installed = time.time_ns()
                        self.stamps[name] = temp.stamp
                        self._displaced(name, bases[name], displaced)
                        self.versions.add(name, data, temp.st, fd=temp.fd, applied=True, since_ns=installed,
                                          sha=temp.stamp.sha)
                    self.broken.pop(name, None)
            finally:
                for temp in temps.values():
                    assert folder is not None
                    os.close(temp.fd)
                    folder.discard(temp.name)
            if folder is not None:
                folder.fsync()
        self._write_cache(COMMITTED, str(generation).encode())
        self.adopted = False

    def _displaced(self, name: str, base: bytes | None, displaced: Displaced) -> None:
        if displaced.odd is not None:
            log.warning("markdown store: %s was replaced by %s while remem wrote it; that entry was removed (what "
                        "it points to is untouched)", self.files / name, displaced.odd)
            return
        kept: tuple[Version, ...] = ()
        if displaced.fd is not None and displaced.data is not None and displaced.data != base:
            # a save written in place may have been displaced half-written: read the rest it got meanwhile
            displaced.data, whole = read_whole(displaced.fd, displaced.data, os.fstat(displaced.fd))
            displaced.size, displaced.mtime_ns = whole.st_size, whole.st_mtime_ns
        st = os.fstat(displaced.fd) if displaced.fd is not None else None
        if displaced.data is not None and st is not None and displaced.data != base:
            self.versions.displaced(name, displaced.data, st)
            kept = tuple(self.versions.of(name))
        self.watches.add(name, displaced)
        if displaced.data != base:
            log.info("markdown store: %s was saved while remem wrote it; the save is applied as a hand edit",
                     self.files / name)
            self.orphans.append(Orphan(name, base, displaced.data, kept, displaced.mtime_ns))

    def _late(self, orphans: list[Orphan]) -> None:
        """Take the saves that reached displaced files late: each is recorded as a version of its file (made from
        what the file held, or from what its writer read before: see remem.markdown.versions)."""
        for orphan in orphans:
            if orphan.theirs is not None and orphan.stat is not None:
                self.versions.displaced(orphan.name, orphan.theirs, orphan.stat)
                orphan.versions = tuple(self.versions.of(orphan.name))
            self.orphans.append(orphan)

    def _save(self, records: Mapping[str, MemoryRecord], vectors: Mapping[str, np.ndarray], files: dict[str, str],
              pending: dict[str, str | None], generation: int) -> None:
        ordered = sorted(records)
        vector_ids = [i for i in ordered if i in vectors]
        matrix = (np.stack([vectors[i] for i in vector_ids]).astype(np.float32) if vector_ids
                  else np.zeros((0, self.dimensions), dtype=np.float32))
        manifest = {"user_id": self.user_id, "generation": generation, "files": files, "pending": pending}
        buffer = io.BytesIO()
        np.savez(buffer, manifest=_json_bytes(manifest), vector_ids=_json_bytes(vector_ids), vectors=matrix,
                 records=_json_bytes([records[i].model_dump(mode="json") for i in ordered]))
        self._write_cache(CACHE_FILE, buffer.getvalue())

    def _write_cache(self, name: str, data: bytes) -> None:
        cache = self.cache_folder(create=True)
        assert cache is not None
        with cache:
            cache.write(name, data)

    def close(self) -> None:
        """Stop watching displaced files (a last check first: late writes become :attr:`orphans`)."""
        self._late(self.watches.check(final=True))
        self.versions.close()
