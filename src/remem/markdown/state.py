"""One user's part of the Markdown store: the records, their vectors, the files as remem last wrote them, and the
cache that makes a restart cheap.

On disk, per user::

    <root>/<user>/*.md                  the memories (the store's content; people read and edit these)
    <root>/.remem/<user>/state.npz      cache: every record (the last good state), vectors, file hashes
    <root>/.remem/<user>/committed      the cache generation whose files are completely written

A write (:meth:`UserState.commit`) is crash-safe without a journal of its own: it first replaces the cache
(new records, vectors and file hashes, plus each touched file's *previous* hash as ``pending``), then writes the
files atomically, then the ``committed`` marker. A crash in between leaves ``committed`` behind the cache: on
the next open, a touched file that still holds its previous content is rewritten from the cache (the write is
rolled forward); one that holds anything else was edited by a person meanwhile and is left for the sync.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MarkdownConflictError, StoreError
from ..models import MemoryRecord
from .files import Stamp, atomic_write, markdown_files, remove, sha256
from .fmt import PROFILE_FILE, FileProblem, file_of, render
from .index import Columns

CACHE_FILE = "state.npz"
COMMITTED = "committed"


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


class UserState:
    """The store's view of one user; every method is called with :attr:`lock` held."""

    def __init__(self, user_id: str, files: Path, cache: Path, dimensions: int) -> None:
        self.user_id, self.files, self.cache, self.dimensions = user_id, files, cache, dimensions
        self.lock = threading.RLock()
        self.records: dict[str, MemoryRecord] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.stamps: dict[str, Stamp] = {}
        self.generation = 0
        #: Loaded from files without a cache (copied in, cloned, cache lost): not yet reconciled with history.
        self.adopted = False
        #: Files that could not be read: name -> (content hash, problems). Writes over them are refused.
        self.broken: dict[str, tuple[str, list[FileProblem]]] = {}
        self._columns: Columns | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, user_id: str, files: Path, cache: Path, dimensions: int) -> UserState:
        state = cls(user_id, files, cache, dimensions)
        path = cache / CACHE_FILE
        if path.exists():
            state._load(path)
        elif markdown_files(files):
            state.adopted = True
        return state

    @staticmethod
    def interrupted(cache: Path) -> bool:
        """Whether the cache in ``cache`` is ahead of its ``committed`` marker (a write a crash interrupted)."""
        path, marker = cache / CACHE_FILE, cache / COMMITTED
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                generation = int(json.loads(bytes(z["manifest"]))["generation"])
            return generation > (int(marker.read_text() or 0) if marker.exists() else 0)
        except (OSError, ValueError, KeyError):
            return True  # let the full load report it

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
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
        marker = self.cache / COMMITTED
        committed = int(marker.read_text() or 0) if marker.exists() else 0
        if committed < self.generation:
            self._roll_forward(manifest.get("pending") or {})

    def _roll_forward(self, pending: Mapping[str, str | None]) -> None:
        layout = self.layout(self.records.values())
        for name, before in pending.items():
            path = self.files / name
            now = sha256(path.read_bytes()) if path.exists() else None
            if now != before:
                continue  # the new content (done) or a person's edit (the sync's business)
            data = self._content(name, layout.get(name, []))
            if data is None:
                remove(path)
            else:
                self.files.mkdir(parents=True, exist_ok=True)
                atomic_write(path, data)
        atomic_write(self.cache / COMMITTED, str(self.generation).encode())

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

    def changed(self) -> dict[str, bytes | None]:
        """Files whose content differs from what the store last wrote or accepted: name -> bytes (None: gone).
        Unchanged files are recognised by their stat where possible (see :class:`~.files.Stamp`)."""
        disk = markdown_files(self.files)
        out: dict[str, bytes | None] = {}
        for name in sorted(set(disk) | set(self.stamps)):
            path, stamp = disk.get(name), self.stamps.get(name)
            if path is None:
                out[name] = None
                continue
            try:
                st = path.stat()
                if stamp is not None and stamp.same_stat(st):
                    continue
                data = path.read_bytes()
            except FileNotFoundError:
                out[name] = None
                continue
            sha = sha256(data)
            if stamp is not None and sha == stamp.sha:
                self.stamps[name] = Stamp(sha, st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns())
            else:
                out[name] = data
        return out

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
        try:
            yield
        except BaseException:
            for name, data in contents.items():  # put back what a person wrote, if the store replaced it
                wrote = self.stamps.get(name)
                path = self.files / name
                on_disk = sha256(path.read_bytes()) if path.exists() else None
                if on_disk == (wrote.sha if wrote else None) and on_disk != (sha256(data) if data is not None else None):
                    if data is None:
                        remove(path)
                    else:
                        atomic_write(path, data)
            self.stamps = saved
            raise

    def _check_unchanged(self, names: Iterable[str]) -> None:
        for name in names:
            path, stamp = self.files / name, self.stamps.get(name)
            try:
                st = path.stat()
            except FileNotFoundError:
                if stamp is None:
                    continue
                same = False
            else:
                same = stamp is not None and (stamp.same_stat(st) or sha256(path.read_bytes()) == stamp.sha)
            if not same:
                problems = self.broken.get(name, ("", []))[1]
                detail = "; ".join(str(p) for p in problems[:3]) or "a hand edit that is not synced yet"
                raise MarkdownConflictError(
                    f"{path} changed on disk since remem last read it ({detail}); nothing was written: fix the "
                    "file, then retry", path=str(path), problems=[p.model_dump() for p in problems])

    # -- writes ----------------------------------------------------------------------------------------------
    def commit(self, records: dict[str, MemoryRecord], vectors: dict[str, np.ndarray], touched: set[str],
               *, force: Iterable[str] = ()) -> None:
        """Make ``records``/``vectors`` the user's state: re-render the ``touched`` files (and ``force``-d ones,
        the profile on the first write), refusing to overwrite a file that changed on disk, then persist (see
        the module docstring for the crash-safe order)."""
        names = set(touched) | set(force) | ({PROFILE_FILE} if PROFILE_FILE not in self.stamps else set())
        layout = self.layout(r for r in records.values() if file_of(r) in names)
        contents: dict[str, bytes | None] = {}
        for name in sorted(names):
            data = self._content(name, layout.get(name, []))
            before = self.stamps.get(name)
            if (before.sha if before else None) != (sha256(data) if data is not None else None):
                contents[name] = data
        self._check_unchanged(contents)
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
        if contents:
            self.files.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            if data is None:
                remove(self.files / name)
                self.stamps.pop(name, None)
            else:
                self.stamps[name] = atomic_write(self.files / name, data)
            self.broken.pop(name, None)
        atomic_write(self.cache / COMMITTED, str(generation).encode())
        self.adopted = False

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
        self.cache.mkdir(parents=True, exist_ok=True)
        atomic_write(self.cache / CACHE_FILE, buffer.getvalue())
