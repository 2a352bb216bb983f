"""Edits a person saved at the very instant remem replaced the same file: kept, never lost.

remem checks that a file still holds what it last wrote right before replacing it (:meth:`UserState.commit
<remem.markdown.state.UserState.commit>`), and a change found then is synced first. What lands *after* that check
— a save by an editor, or an append by a program that opened the file just before the replacement — is in the
content the replacement displaced (:class:`~remem.markdown.folder.Displaced`). It becomes an :class:`Orphan`: the
content remem expected (``base``) and the one found (``theirs``); the sync applies the difference between the two
(:meth:`remem.markdown.sync.Syncer.sync`), so a line a person added there becomes a memory (ADD by ``file``) and
nothing of remem's own write is undone.

:class:`Watches` keeps a descriptor open on each displaced file for :data:`GRACE` seconds (at most
:data:`MAX_WATCHES` per user): a write that reaches it later (a program that opened it before the replacement)
is caught at the next check.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from .folder import Displaced, read_all
from .versions import Version

log = logging.getLogger("remem.markdown")
#: Seconds a displaced file is watched for late writes; a program that opened it earlier writes within
#: microseconds (``echo >>``) to milliseconds.
GRACE = 2.0
#: Displaced files watched at once per user (each is a file descriptor); the oldest is checked and closed first.
MAX_WATCHES = 8


@dataclass
class Orphan:
    """A person's version of ``name`` (``theirs``; None: they removed the file) made from ``base`` (what remem had
    written there; None: no file), displaced by remem's write."""

    name: str
    base: bytes | None
    theirs: bytes | None
    #: The file's recent versions when it was displaced, the save's own among them (remem.markdown.versions):
    #: kept with the orphan, since it may be applied after many more writes.
    versions: tuple[Version, ...] = field(default=(), compare=False, repr=False)
    #: When the save was written (its modification time): saves are applied oldest first.
    mtime_ns: int = field(default=0, compare=False)
    #: The displaced file's stat when a late write to it was found (its version is recorded from it).
    stat: os.stat_result | None = field(default=None, compare=False, repr=False)


@dataclass
class _Watch:
    name: str
    fd: int
    seen: bytes
    size: int
    mtime_ns: int
    since: float


class Watches:
    """The displaced files of one user still watched for late writes."""

    def __init__(self) -> None:
        self._open: list[_Watch] = []

    def add(self, name: str, displaced: Displaced, *, seen: bytes | None = None) -> None:
        """Watch ``displaced`` (its descriptor is owned from now on); a late write is compared with ``seen`` (by
        default what it held when displaced)."""
        if displaced.fd is None or displaced.data is None:
            return
        self._open.append(_Watch(name, displaced.fd, displaced.data if seen is None else seen, displaced.size,
                                 displaced.mtime_ns, time.monotonic()))

    def check(self, *, final: bool = False) -> list[Orphan]:
        """Orphans from writes that reached a watched file since it was displaced (or last checked); watches
        older than :data:`GRACE` (all of them when ``final``, and beyond :data:`MAX_WATCHES`) are closed."""
        found: list[Orphan] = []
        now, keep = time.monotonic(), []
        for i, w in enumerate(self._open):
            try:
                st = os.fstat(w.fd)
                if (st.st_size, st.st_mtime_ns) != (w.size, w.mtime_ns):
                    data = read_all(w.fd)
                    if data != w.seen:
                        found.append(Orphan(w.name, w.seen, data, mtime_ns=st.st_mtime_ns, stat=st))
                        log.warning("markdown store: a write reached %s after remem replaced it; it is applied as "
                                    "a hand edit", w.name)
                    w.seen, w.size, w.mtime_ns = data, st.st_size, st.st_mtime_ns
            except OSError:
                final_one = True
            else:
                final_one = final or now - w.since > GRACE or len(self._open) - i > MAX_WATCHES
            if final_one:
                os.close(w.fd)
            else:
                keep.append(w)
        self._open = keep
        return found

    def __len__(self) -> int:
        return len(self._open)
