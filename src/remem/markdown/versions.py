"""Which version of a file a person's save was made from, so that a save from a stale buffer undoes nothing.

An editor saves the buffer it read. If remem wrote the file between that read and the save (an agent adding a
memory while a person edits), the save lacks remem's newest lines; if remem had just synced an earlier save, the
buffer holds that save's new lines without the ids remem gave them. Compared with what remem last wrote, the
first reads as the person's DELETE of remem's lines and the second as an ADD of a duplicate. So a save is
compared with the version it was made from (a three-way merge, :meth:`remem.markdown.sync.Syncer.sync`): what the
person did not touch keeps what the store holds now.

Which version that was is read from the file system. remem reads its files with ``O_NOATIME`` and sets the access
time of every file it writes to a second before its modification time, so a version whose access time moved was
read by someone else: a person's editor. Only versions the store holds (remem wrote them, or the sync applied
them) can be a base; a version counts from the moment it was under the file's name. The base of a save is

1. the version it was appended to (written in place, starting with that version's content: ``>>``, ``open("a")``);
2. else the newest version that was under the name and read before the save was written, and that holds every
   memory id of the save that belongs in this file (a person's buffer holds no id given after they read the file)
   and is not the save itself (a save identical to an older version is a revert to it: ``cp backup food.md``);
3. else — no read left a trace: a program that writes the file without reading it (``cp backup food.md``,
   ``git checkout``, a script), a ``noatime`` mount — what remem last wrote or accepted there (for a displaced
   save: what it expected there).

Versions are kept per file, the last :data:`KEEP` (content, inode, modification time, first read once known).
While a version may still be read — it is the file on disk as far as remem knows — a descriptor stays open on it
(at most :data:`MAX_OPEN` in the process; one closed early counts as read).

Limits, stated: a file written in place by an editor keeps one access time for two contents, so a read of the
person's own in-place save shortly after writing it can be taken for a read of the version under it; a stale
buffer whose read left no trace (same clock tick, ``noatime``) is compared with remem's last write (a line it
lacks is the person's DELETE, restorable); saves applied out of the person's order are possible when a save is
displaced and a newer one made from a version read before it (the history records each as the person's change,
nothing is erased).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .files import sha256

#: Versions kept per file (an editor's buffer is at most a few of remem's writes behind), and their content at
#: most (bytes; the newest is always kept).
KEEP = 16
KEEP_BYTES = 16 << 20
#: Descriptors held open on current versions, in the whole process (the least recently used is closed first).
MAX_OPEN = 256
#: ``read_ns`` of a version whose descriptor was closed before it was displaced: taken as read.
UNKNOWN = 0

@dataclass(eq=False)
class Version:
    """One content of one file as remem wrote or found it."""

    name: str
    data: bytes
    ino: int
    mtime_ns: int
    order: int
    sha: str = ""
    fd: int | None = None
    #: When someone other than remem first read it (its access time), None: not read as far as remem knows.
    read_ns: int | None = None
    #: Whether that read was surely of this content (not of a save written in place over it since).
    read_sure: bool = True
    #: Its access time while unread: set by remem on the files it writes, else its modification time.
    unread_ns: int = 0
    #: Since when it could be read under the file's name: when remem put it there (its own writes; the content
    #: was written a little before), else its modification time.
    since_ns: int = 0
    #: The memory ids it holds (filled by the sync when it first needs them).
    ids: frozenset[str] | None = field(default=None, repr=False)
    #: The version this content was written into in place (same inode, still open when it was recorded).
    inplace_of: Version | None = field(default=None, repr=False)
    #: Whether the store holds what it says: remem wrote it, or the sync applied it (only those can be a base).
    applied: bool = False

    def read_in(self, st: os.stat_result) -> int:
        """Whether its file's stat says someone read this content: 2, surely (the access time moved and the file
        was not written since); 1, maybe (written in place since, and the access time is older than that write —
        a read of this content, or one of the newer content within the same clock tick); 0, no."""
        if st.st_atime_ns <= self.unread_ns:
            return 0
        if st.st_mtime_ns == self.mtime_ns:
            return 2
        return 1 if st.st_atime_ns < st.st_mtime_ns else 0

    def read_before(self, ns: int) -> bool:
        return self.read_ns is not None and self.read_ns <= ns


class _Open:
    """The process-wide budget of descriptors held on versions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: OrderedDict[int, Version] = OrderedDict()

    def hold(self, version: Version, fd: int) -> None:
        with self.lock:
            version.fd = fd
            self.held[id(version)] = version
            while len(self.held) > MAX_OPEN:
                _, oldest = self.held.popitem(last=False)
                oldest.read_sure = False
                self._close(oldest, read_ns=UNKNOWN)

    def settle(self, version: Version) -> None:
        """Record whether the version was read (its access time now), and close its descriptor."""
        with self.lock:
            if version.fd is None:
                return
            self.held.pop(id(version), None)
            try:
                st = os.fstat(version.fd)
            except OSError:
                read_ns: int | None = UNKNOWN
            else:
                level = version.read_in(st)
                read_ns, version.read_sure = (st.st_atime_ns if level else None), level == 2
            self._close(version, read_ns=read_ns)

    @staticmethod
    def _close(version: Version, *, read_ns: int | None) -> None:
        assert version.fd is not None
        os.close(version.fd)
        version.fd, version.read_ns = None, read_ns


_OPEN = _Open()


def read_ns_of(st: os.stat_result) -> int | None:
    """The first read of a file by someone other than remem, from its stat (None: not read since written)."""
    return st.st_atime_ns if st.st_atime_ns > st.st_mtime_ns else None


class Versions:
    """The recent versions of one user's files (called with the user's state lock held)."""

    def __init__(self) -> None:
        self._files: dict[str, list[Version]] = {}
        self._order = 0

    def add(self, name: str, data: bytes, st: os.stat_result, *, fd: int | None = None,
            applied: bool = False, since_ns: int | None = None, sha: str | None = None) -> Version:
        """Record ``data`` as ``name``'s content on disk now (``fd``: a descriptor on it, owned from now on, kept
        while it may be read); the versions it displaced are settled. A content seen before (same inode, size
        and modification time) is not recorded twice."""
        versions = self._files.setdefault(name, [])
        if versions:
            last = versions[-1]
            if (last.ino, last.mtime_ns, len(last.data)) == (st.st_ino, st.st_mtime_ns, st.st_size) \
                    and last.data == data:
                if fd is not None:
                    os.close(fd)
                last.applied = last.applied or applied
                return last
        version = self._new(name, data, st, None, sha)
        version.applied = applied
        if since_ns is not None:
            version.since_ns = since_ns
        for v in versions:
            _OPEN.settle(v)
        if fd is not None:
            _OPEN.hold(version, fd)
        self._keep(versions, version)
        return version

    def displaced(self, name: str, data: bytes, st: os.stat_result) -> Version:
        """Record a content found displaced from ``name`` (a save remem's write replaced): no longer readable by
        name, so whether it was read is known now. It is not the file on disk: held descriptors stay."""
        version = self._new(name, data, st, read_ns_of(st))
        self._keep(self._files.setdefault(name, []), version)
        return version

    def _new(self, name: str, data: bytes, st: os.stat_result, read_ns: int | None, sha: str | None = None
             ) -> Version:
        self._order += 1
        version = Version(name, data, st.st_ino, st.st_mtime_ns, self._order, sha=sha or sha256(data), read_ns=read_ns,
                          unread_ns=min(st.st_atime_ns, st.st_mtime_ns), since_ns=st.st_mtime_ns)
        # an inode still held open cannot have been reused: the same number is the same file, written in place
        version.inplace_of = next((v for v in reversed(self._files.get(name, []))
                                   if v.fd is not None and v.ino == st.st_ino), None)
        return version

    @staticmethod
    def _keep(versions: list[Version], version: Version) -> None:
        versions.append(version)
        size = sum(len(v.data) for v in versions)
        while len(versions) > KEEP or (size > KEEP_BYTES and len(versions) > 1):
            dropped = versions.pop(0)
            size -= len(dropped.data)
            _OPEN.settle(dropped)

    def gone(self, name: str) -> None:
        """``name`` was removed: its versions can no longer be read."""
        for v in self._files.get(name, []):
            _OPEN.settle(v)

    def find(self, name: str, data: bytes, among: Iterable[Version] = ()) -> Version | None:
        """The newest recorded version of ``name`` holding ``data`` (also looked for ``among`` these)."""
        sha = sha256(data)
        for v in sorted(self.of(name, among), key=lambda v: v.order, reverse=True):
            if v.sha == sha:
                return v
        return None

    def of(self, name: str, among: Iterable[Version] = ()) -> list[Version]:
        """The versions of ``name`` kept, and ``among`` these (a displaced save's, kept with it)."""
        out = list(self._files.get(name, []))
        known = {id(v) for v in out}
        return out + [v for v in among if id(v) not in known and v.name == name]

    def bases(self, save: Version, among: Iterable[Version] = ()) -> Iterator[tuple[Version, bool]]:
        """The versions ``save`` may have been made from (among those kept and ``among``), most likely first, each
        with whether it is certain (the save was written into it in place): see the module docstring (the caller
        checks the ids of rule 2)."""
        inplace = save.inplace_of
        while inplace is not None and not inplace.applied:  # written in place into a save not applied yet
            inplace = inplace.inplace_of
        if inplace is not None and save.data.startswith(inplace.data):  # appended to: certainly made from it
            yield inplace, True
            return
        others = [v for v in self.of(save.name, among) if v is not save and v.applied and v.since_ns <= save.mtime_ns]
        read = [(v, self._read(v, save.mtime_ns)) for v in sorted(others, key=lambda v: (v.since_ns, v.order),
                                                                      reverse=True)]
        for wanted in (2, 1):  # a sure read before a maybe: a read of one's own save in place looks like a maybe
            for v, level in read:
                if level == wanted:
                    yield v, False

    @staticmethod
    def _read(version: Version, before_ns: int) -> int:
        """:meth:`Version.read_in` for a read before ``before_ns``: from the open file when it is still held (the
        file on disk as far as remem knows), else from what was recorded when it was settled."""
        with _OPEN.lock:
            if version.fd is None:
                return (2 if version.read_sure else 1) if version.read_before(before_ns) else 0
            try:
                st = os.fstat(version.fd)
            except OSError:
                return 1
        return version.read_in(st) if st.st_atime_ns <= before_ns else 0

    def close(self) -> None:
        for versions in self._files.values():
            for v in versions:
                _OPEN.settle(v)
        self._files.clear()
