"""The one write path of remem: every change of a user's memories goes through :class:`Writer`.

Raw ``add``, the LLM pipeline's maintenance tools, the chat agent, import, REST and MCP all call the same
methods, so for each user the duplicate check and the insert, or the read and the write of an update, happen
under one lock (:class:`~remem.storage.base.Locks`: threads in the embedded default, Postgres advisory locks
across server processes).

Crash consistency (history is the system of record): a change is announced as an *intent* in the history
database before the store is written, and turned into history events when the store write is done::

    begin(intent) ─▶ store write ─▶ commit(intent → events)

A process killed anywhere in between leaves the intent behind; the next open of the data directory (or the next
write of that user, or ``remem doctor``) *rolls it forward*: the store is made to hold the intent's ``after``
records (re-embedding texts it lacks) and its events are recorded, so history and store agree and the
interrupted operation is complete. A store write that fails with an error is undone (the store is put back to
``before``) and the intent dropped, so the caller's error means "nothing happened" and a retry is safe; if the
undo fails too (a store that is down), the intent is marked ``back`` and recovery finishes the undo later.
``forget_user`` writes a ``forget`` intent first, so an erasure that started is always finished.

When the vector store lives in the history's own database (``pgvector``), no intent is needed: the store write
and its events commit in one transaction.
"""

from .core import Writer
from .doctor import DoctorReport, UserCheck, check
from .types import Change, DedupeMode, RecoveryReport

__all__ = ["Change", "DedupeMode", "DoctorReport", "RecoveryReport", "UserCheck", "Writer", "check"]
