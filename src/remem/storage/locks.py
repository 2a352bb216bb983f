"""Per-user locks inside one process (the embedded default: one process per data directory).

A re-entrant lock per ``(scope, user)``; entries are created on demand and dropped when no thread holds or waits
for them, so a long-running server does not keep one lock object per user ever seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Entry:
    __slots__ = ("depth", "lock", "owner", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # threads holding or waiting
        self.owner: int | None = None
        self.depth = 0


class LocalLocks:
    """:class:`~remem.storage.base.Locks` for one process: threads of the process exclude each other."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def held(self, user_id: str, scope: str = "write") -> bool:
        with self._guard:
            entry = self._entries.get((scope, user_id))
            return entry is not None and entry.owner == threading.get_ident()

    @contextmanager
    def hold(self, user_id: str, scope: str = "write") -> Iterator[None]:
        key, me = (scope, user_id), threading.get_ident()
        with self._guard:
            entry = self._entries.setdefault(key, _Entry())
            if entry.owner == me:  # re-entry
                entry.depth += 1
                reentered = True
            else:
                entry.users += 1
                reentered = False
        if reentered:
            try:
                yield
            finally:
                with self._guard:
                    entry.depth -= 1
            return
        entry.lock.acquire()
        with self._guard:
            entry.owner, entry.depth = me, 1
        try:
            yield
        finally:
            with self._guard:
                entry.owner, entry.depth = None, 0
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]
            entry.lock.release()
