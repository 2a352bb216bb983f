"""File primitives of the Markdown store: atomic writes, fingerprints, and reading a user's file as UTF-8.

An atomic write goes to a hidden temporary file in the same directory, is flushed and ``fsync``-ed, then renamed
over the target, and the directory is ``fsync``-ed: a reader (a person's editor, ``git``, another remem call)
sees the old file or the new one, never half of one, and a crash keeps one of the two.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .fmt import FileProblem

#: A file modified less than this long before it was fingerprinted may change again within the same mtime
#: tick without its size changing ("racily clean", as git calls it): it is re-hashed until it is older.
RACY_NS = 2_000_000_000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Stamp:
    """What a file held when the store last wrote or read it: content hash, and the stat that says "unchanged"
    without reading it (size, mtime, inode; ``seen_ns`` detects racily clean files)."""

    sha: str
    size: int = -1
    mtime_ns: int = -1
    ino: int = -1
    seen_ns: int = 0

    def same_stat(self, st: os.stat_result) -> bool:
        return (st.st_size, st.st_mtime_ns, st.st_ino) == (self.size, self.mtime_ns, self.ino) and \
            st.st_mtime_ns < self.seen_ns - RACY_NS


def stamp_of(path: Path, sha: str) -> Stamp:
    st = path.stat()
    return Stamp(sha=sha, size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino, seen_ns=time.time_ns())


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> Stamp:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync of the directory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return stamp_of(path, sha256(data))


def remove(path: Path) -> None:
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)


def markdown_files(directory: Path) -> dict[str, Path]:
    """The ``*.md`` files of a user's directory (hidden files, temporaries and subdirectories are not memories)."""
    if not directory.is_dir():
        return {}
    out: dict[str, Path] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".md") and not entry.name.startswith(".") and entry.is_file():
                out[entry.name] = Path(entry.path)
    return out


def decode(data: bytes, path: str) -> tuple[str | None, FileProblem | None]:
    """The text of a file (a UTF-8 BOM is dropped), or the problem: a file saved in another encoding is named
    with the line and column of the first byte that is not UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, FileProblem(path=path, line=1, message="the file is UTF-16: save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, FileProblem(path=path, line=line, message=f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at "
                                                               f"column {column}): save the file as UTF-8")
