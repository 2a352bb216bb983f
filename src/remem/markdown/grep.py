"""``remem grep``: a user's memories whose text matches a regular expression, with file and line.

For people who just want grep: the pattern is a Python regular expression (``re``; ``fixed=True`` for a plain
string), matched against each memory's text — the whole of a multi-line memory, so ``^``/``$`` need
``(?m)``. With the Markdown store each hit names its file and line (the store syncs the user's files first, so
an edit made a moment ago is searched); with any other store the memories are matched the same way, without a
location.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from ..errors import ValidationError
from ..models import MemoryRecord
from ..parts import HasParts, MemoryParts, parts_of
from ..stores.base import MemoryFilter
from ..validation import check_text, check_user_id

PAGE = 10_000


class GrepHit(BaseModel):
    """One matching memory: the record, where it is written (Markdown store) and the matched character spans."""

    record: MemoryRecord
    file: str | None = Field(default=None, description="file name in the user's directory (Markdown store)")
    line: int | None = Field(default=None, description="1-based line where the memory starts in that file")
    spans: list[tuple[int, int]] = Field(default_factory=list, description="(start, end) of each match in text")


def grep(target: MemoryParts | HasParts, user_id: str, pattern: str, *, ignore_case: bool = False,
         fixed: bool = False, deleted: bool = False) -> list[GrepHit]:
    """Memories of ``user_id`` whose text matches ``pattern`` (live ones; ``deleted=True``: the trash too),
    ordered by file and line (Markdown store) else by time. ValidationError for a bad user id or pattern."""
    parts = parts_of(target)
    user_id = check_user_id(user_id)
    check_text(pattern, 1000, "pattern")
    try:
        regex = re.compile(re.escape(pattern) if fixed else pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValidationError(f"invalid pattern: {exc}", pattern=pattern) from None
    flt = MemoryFilter(user_id=user_id, deleted=None if deleted else False)
    records: list[MemoryRecord] = []
    while True:
        page = parts.store.scroll(flt, offset=len(records), limit=PAGE, order="asc")
        records += page
        if len(page) < PAGE:
            break
    locate = getattr(parts.store, "locate", None)
    where: dict[str, tuple[str, int]] = locate(user_id) if callable(locate) else {}
    hits = []
    for r in records:
        spans = [m.span() for m in regex.finditer(r.text) if m.end() > m.start()]
        if spans:
            file, line = where.get(r.id, (None, None))
            hits.append(GrepHit(record=r, file=file, line=line, spans=spans))
    if where:
        hits.sort(key=lambda h: (h.file or "", h.line or 0))
    return hits
