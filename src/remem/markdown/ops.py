"""Library entry points of the Markdown store: sync a user's edited files now, and find the store of a Memory."""

from __future__ import annotations

from ..errors import ConfigurationError, MarkdownFormatError
from ..parts import HasParts, MemoryParts, parts_of
from ..validation import check_user_id
from .fmt import FileProblem
from .store import MarkdownStore
from .sync import SyncReport


def markdown_store(target: MemoryParts | HasParts) -> MarkdownStore:
    """The Markdown store of a Memory; ConfigurationError when it uses another store."""
    store = parts_of(target).store
    if not isinstance(store, MarkdownStore):
        raise ConfigurationError(f"this needs the Markdown store (REMEM_STORE=markdown), not {store.name!r}")
    return store


def sync(target: MemoryParts | HasParts, user_id: str | None = None, *, strict: bool = False) -> list[SyncReport]:
    """Apply the hand edits of one user (or of every user with files) now; one report per user.

    Reads and writes sync on their own; this is for tools (``remem sync``) and tests. Over every user, one whose
    directory is a symbolic link is reported as a problem (never followed), the others are synced. ``strict``: raise
    :class:`~remem.errors.MarkdownFormatError` naming every ``file:line`` that could not be applied (the
    edits that could were applied; the others keep their last good state)."""
    store = markdown_store(target)
    users = [check_user_id(user_id)] if user_id is not None else store.users()
    reports = []
    for uid in users:
        try:
            report = store.sync(uid)
        except MarkdownFormatError as exc:  # a user directory that is a link: reported, the others synced
            if user_id is not None:
                raise
            report = SyncReport(user_id=uid, problems=[FileProblem.model_validate(p)
                                                       for p in exc.context.get("problems", [])])
        reports.append(report if report is not None else SyncReport(user_id=uid))
    problems = [p for r in reports for p in r.problems]
    if strict and problems:
        raise MarkdownFormatError(
            "; ".join(str(p) for p in problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
            problems=[p.model_dump() for p in problems])
    return reports
