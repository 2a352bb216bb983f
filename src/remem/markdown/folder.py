"""The store's directories, opened so that no symbolic link inside ``<home>/markdown/`` is ever followed, and the
compare-and-swap replacement of a file a person may be editing.

**Links.** A :class:`Folder` is a directory file descriptor opened component by component from the store's root
with ``O_NOFOLLOW``; every file operation is relative to it (``openat``, ``renameat``, ``unlinkat``) and opens files
``O_NOFOLLOW | O_NONBLOCK``, requiring a regular file. A user directory, cache directory or ``.md`` file that is a
symbolic link (or a FIFO, a device…) is refused with :func:`refused`, a
:class:`~remem.errors.MarkdownFormatError` naming the path: nothing is read or written through it, so remem never
reads or writes outside the store. The root itself may be a link (where a person chose to keep the store).
:func:`erase` removes an entry without following it: a link is unlinked, never what it points to.

**Replacing a file** (:meth:`Folder.swap`): the new content is written to a hidden temporary file (flushed,
``fsync``-ed), then exchanged with the file in one step (Linux ``renameat2(RENAME_EXCHANGE)``): the content it
displaced — whatever a person had saved there up to that instant — is read back from the temporary name and
returned (:class:`Displaced`), with a descriptor kept open on it to catch an append that a program opened before
the exchange and writes after it. Where the exchange is unavailable (macOS, file systems without it) the file is
read, then renamed over: a save that lands between the two (microseconds) is lost. A removal moves the file to a
temporary name first (:meth:`Folder.take`), which is atomic everywhere.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from ..errors import MarkdownFormatError
from .files import Stamp, sha256
from .fmt import FileProblem

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)
#: How far before its modification time remem sets the access time of a file it writes (see Folder.temp).
UNREAD_NS = 1_000_000_000
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NOREPLACE, _EXCHANGE = 1, 2  # renameat2(2) flags (linux/fs.h)
_renameat2: Any = None  # the libc function once looked up; False where there is none


def refused(path: Path | str, what: str = "a symbolic link", entry: str = "file") -> MarkdownFormatError:
    """The error for a link (or special file) where the store expects its own ``entry`` (directory or file)."""
    message = (f"{path} is {what}: remem does not follow links or open special files in its Markdown store (they "
               "could lead outside it); put the directory or file itself there, or remove it (`remem forget-user` "
               "removes a user's link, never what it points to)")
    problem = FileProblem(path=str(path), line=1, message=f"the {entry} is {what}: remem does not follow links or "
                          f"open special files in its Markdown store; put the {entry} itself here")
    return MarkdownFormatError(message, path=str(path), problems=[problem.model_dump()])


def _kind(st: os.stat_result, expected: str) -> str:
    """What an entry is, for :func:`refused`: ``a symbolic link``, or e.g. ``a FIFO where a file belongs``."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    kind = ("a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a special file")
    return f"{kind} where {expected} belongs"


def _rename2(dir_fd: int, src: str, dst: str, flags: int) -> bool:
    """``renameat2`` within one directory; False where the system or file system does not support it."""
    global _renameat2
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (AttributeError, OSError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(dir_fd, os.fsencode(src), dir_fd, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), dst)


def read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


#: A save written in place is seen half-done by a reader: empty (truncated, not written yet) or cut between two
#: chunks (no final newline). Such a file written less than this long ago is read again once this old.
PARTIAL_NS = 200_000_000


def read_whole(fd: int, data: bytes, st: os.stat_result) -> tuple[bytes, os.stat_result]:
    """``data`` (read from ``fd`` with stat ``st``), or — if it looks like a save still being written in place
    (empty, or no final newline, and written less than :data:`PARTIAL_NS` ago) — what ``fd`` holds once that long
    has passed (a file emptied on purpose is then still empty)."""
    young = PARTIAL_NS - (time.time_ns() - st.st_mtime_ns)
    if data.endswith(b"\n") or young <= 0:
        return data, st
    time.sleep(min(young, PARTIAL_NS) / 1e9)
    return read_steady(fd)


def read_steady(fd: int, attempts: int = 5) -> tuple[bytes, os.stat_result]:
    """The content of ``fd`` with a stat that describes it: read again while a write changes the file during the
    read (a program writing it in place), at most ``attempts`` times."""
    st = os.fstat(fd)
    for _ in range(attempts):
        data = read_all(fd)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns) == (len(data), st.st_mtime_ns):
            break
        st = after
    return data, st


@dataclass
class Displaced:
    """What a :meth:`Folder.swap` or :meth:`Folder.take` removed from a file name at that instant.

    ``data`` is its content (None: nothing was there); ``fd`` stays open on it (the caller watches it for late
    writes, then closes it); ``size``/``mtime_ns`` are its stat when read; ``odd`` names a link or special file
    that was displaced (and unlinked, never followed)."""

    data: bytes | None = None
    fd: int | None = None
    size: int = -1
    mtime_ns: int = -1
    odd: str | None = None


@dataclass
class Temp:
    """A temporary file written by :meth:`Folder.temp`: its name, the stamp it will have under the file's name,
    a descriptor open on it, and its stat once written."""

    name: str
    stamp: Stamp
    fd: int
    st: os.stat_result


class Folder:
    """A directory of the store, opened without following links (see the module docstring)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def open(cls, root: Path, *parts: str, create: bool = False) -> Folder | None:
        """``root/parts…`` (None when missing and not ``create``); MarkdownFormatError if a part is a link or not
        a directory. ``root`` itself is opened as the OS finds it (it may be a link)."""
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        path = root
        try:
            for part in parts:
                path = path / part
                if create:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    os.close(fd)
                    return None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    what = _kind(os.stat(part, dir_fd=fd, follow_symlinks=False), "a directory")
                    raise refused(path, what, "directory") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    @classmethod
    def at(cls, root: Path, *parts: str) -> Folder:
        """:meth:`open` with ``create=True`` (never None)."""
        folder = cls.open(root, *parts, create=True)
        assert folder is not None
        return folder

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------------------
    def entries(self) -> tuple[dict[str, os.stat_result], dict[str, str]]:
        """The ``*.md`` files (hidden ones and temporaries are not memories): regular files as name -> stat,
        and the others (links, FIFOs, directories…) as name -> what they are."""
        files: dict[str, os.stat_result] = {}
        odd: dict[str, str] = {}
        with os.scandir(self.fd) as it:
            for entry in it:
                if entry.name.endswith(".md") and not entry.name.startswith("."):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        files[entry.name] = st
                    else:
                        odd[entry.name] = _kind(st, "a file")
        return files, odd

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _open_regular(self, name: str) -> int | None:
        try:
            try:  # remem's reads leave the access time alone: it tells a person's reads (remem.markdown.versions)
                fd = os.open(name, _READ | _NOATIME, dir_fd=self.fd)
            except PermissionError:  # O_NOATIME is for the file's owner only
                fd = os.open(name, _READ, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise refused(self.path / name) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise refused(self.path / name, _kind(st, "a file"))
        return fd

    def open_file(self, name: str) -> BinaryIO | None:
        """``name`` opened for reading (None: missing); MarkdownFormatError if it is a link or special file."""
        fd = self._open_regular(name)
        return None if fd is None else os.fdopen(fd, "rb")

    def read(self, name: str) -> bytes | None:
        """The content of ``name`` (None: missing); MarkdownFormatError if it is a link or special file."""
        fd = self._open_regular(name)
        if fd is None:
            return None
        try:
            return read_all(fd)
        finally:
            os.close(fd)

    def read_open(self, name: str) -> tuple[bytes, int, os.stat_result] | None:
        """:meth:`read`, keeping the descriptor open (the caller closes it), with a stat that describes what was
        read (:func:`read_steady`)."""
        fd = self._open_regular(name)
        if fd is None:
            return None
        try:
            data, st = read_whole(fd, *read_steady(fd))
            return data, fd, st
        except BaseException:
            os.close(fd)
            raise

    # -- writing ---------------------------------------------------------------------------------------------
    def temp(self, name: str, data: bytes) -> Temp:
        """A new hidden temporary file beside ``name`` holding ``data`` (flushed, fsync-ed), with a descriptor
        left open on it (the caller closes it) and the stamp the file will have once it is renamed to ``name``."""
        temp = f".{name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(temp, _NEW, 0o644, dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            st = os.fstat(fd)
            # an access time a second before the last write: any later read moves it (remem.markdown.versions)
            os.utime(fd, ns=(st.st_mtime_ns - UNREAD_NS, st.st_mtime_ns))
            os.fsync(fd)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            self.discard(temp)
            raise
        return Temp(temp, Stamp(sha=sha256(data), size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino,
                                seen_ns=time.time_ns()), fd, st)

    def discard(self, temp: str) -> None:
        try:
            os.unlink(temp, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def write(self, name: str, data: bytes) -> Stamp:
        """Replace ``name`` with ``data`` atomically (temporary file, fsync, rename, fsync of the directory), for
        files no person edits (the cache); a link at ``name`` is replaced, never followed."""
        temp = self.temp(name, data)
        os.close(temp.fd)
        try:
            os.replace(temp.name, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.discard(temp.name)
            raise
        self.fsync()
        return temp.stamp

    def remove(self, name: str) -> None:
        """Unlink ``name`` if it is there (a link is unlinked, not followed)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if nothing (not even a dangling link) is there; whether it was written."""
        try:
            fd = os.open(name, _NEW, 0o644, dir_fd=self.fd)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def swap(self, temp: str, name: str) -> Displaced:
        """Put the temporary file ``temp`` at ``name`` in one step and return what was there at that instant (see
        the module docstring)."""
        while True:
            try:
                if not _rename2(self.fd, temp, name, _EXCHANGE):
                    return self._read_then_replace(temp, name)
            except FileNotFoundError:  # nothing at name: put temp there, unless a file appeared meanwhile
                try:
                    if not _rename2(self.fd, temp, name, _NOREPLACE):
                        return self._read_then_replace(temp, name)
                except FileExistsError:
                    continue
                return Displaced()
            return self._displaced(temp)

    def take(self, name: str) -> Displaced:
        """Remove ``name`` (moved to a temporary name first, in one step) and return what it held then."""
        temp = f".{name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.gone"
        try:
            os.rename(name, temp, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except FileNotFoundError:
            return Displaced()
        return self._displaced(temp)

    def _displaced(self, temp: str) -> Displaced:
        try:
            fd = self._open_regular(temp)
        except MarkdownFormatError:
            self.discard(temp)  # a link: the link goes, what it points to stays
            return Displaced(odd="a symbolic link or special file")
        self.discard(temp)
        if fd is None:
            return Displaced()
        return self._watchable(fd)

    def _read_then_replace(self, temp: str, name: str) -> Displaced:
        odd: str | None = None
        try:
            fd = self._open_regular(name)
        except MarkdownFormatError:
            fd, odd = None, "a symbolic link or special file"
        displaced = self._watchable(fd) if fd is not None else Displaced(odd=odd)
        try:
            os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            if displaced.fd is not None:
                os.close(displaced.fd)
            self.discard(temp)
            raise
        return displaced

    @staticmethod
    def _watchable(fd: int) -> Displaced:
        data, st = read_steady(fd)
        return Displaced(data=data, fd=fd, size=st.st_size, mtime_ns=st.st_mtime_ns)

    def fsync(self) -> None:
        os.fsync(self.fd)


def erase(root: Path, *parts: str) -> bool:
    """Remove ``root/parts…`` whatever it is, without following a link: a link or file is unlinked (never what a
    link points to), a directory is removed with everything in it (``shutil.rmtree`` on a directory descriptor,
    which follows no link inside). Whether something was removed; MarkdownFormatError if a parent is a link."""
    parent = Folder.open(root, *parts[:-1])
    if parent is None:
        return False
    with parent:
        st = parent.lstat(parts[-1])
        if st is None:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(parts[-1], dir_fd=parent.fd)
        else:
            os.unlink(parts[-1], dir_fd=parent.fd)
        parent.fsync()
    return True
