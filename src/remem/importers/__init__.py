"""Bring memories from elsewhere: chat exports and other memory systems -> remem memories.

``import_export(memory, path, "chatgpt", user_id="alice")`` (CLI: ``remem import FILE --from chatgpt --user
alice``; FILE may be the export's zip, whose ``conversations.json`` is read) reads the whole file (at most
256 MiB of JSON after unzipping, nested at most 64 deep: :mod:`.jsonfile`), validates it (an error names its
line and column, or its JSON path, and nothing is written), then stores it and returns an
:class:`ImportSummary` (what was imported, what was skipped and why).
Formats, one module each (the format version followed is in each module's docstring):

* ``chatgpt`` — ChatGPT's ``conversations.json``: messages -> episodes (:mod:`.chatgpt`);
* ``claude`` — Claude's ``conversations.json``: messages -> episodes (:mod:`.claude`);
* ``mem0`` — a Mem0 ``get_all`` dump: memories -> facts (:mod:`.mem0`).

Re-running an import writes nothing new (ids are deterministic per user); see :mod:`.base` for what happens
when a write fails midway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..bounds import check_int
from ..errors import ValidationError
from ..memory.core import Memory
from ..validation import check_user_id
from . import chatgpt, claude, mem0
from .base import ImportSummary, Progress, Skipped, write
from .jsonfile import MAX_IMPORT_BYTES, read_json

Source = Literal["chatgpt", "claude", "mem0"]
SOURCES: tuple[Source, ...] = ("chatgpt", "claude", "mem0")

__all__ = ["MAX_IMPORT_BYTES", "SOURCES", "ImportSummary", "Skipped", "Source", "import_export"]


def import_export(memory: Memory, path: str | Path, source: Source, *, user_id: str | None = None,
                  progress: Progress | None = None, max_bytes: int = MAX_IMPORT_BYTES) -> ImportSummary:
    """Import an export file of ``source`` (see the module docstring).

    ``user_id``: whose conversations a chat export holds (required for ``chatgpt``/``claude``); for ``mem0``
    the user of items that carry no ``user_id``. ``progress(done, total)`` is called as records are written.
    ``max_bytes``: the largest JSON document read (after unzipping; default 256 MiB, see
    :mod:`.jsonfile`). Raises ``ImportFormatError`` (a ``ValidationError``) for a malformed or oversized file,
    before writing anything.
    """
    file = Path(path)
    if source not in SOURCES:
        raise ValidationError(f"unknown import format {source!r} (use {', '.join(SOURCES)})")
    max_bytes = check_int(max_bytes, "max_bytes", minimum=1, maximum=2**40)
    if source != "mem0" and user_id is None:
        raise ValidationError(f"a {source} export holds one person's conversations: say whose (user_id / --user)")
    max_chars = memory.settings.max_text_chars
    data = read_json(file, zip_member=None if source == "mem0" else "conversations.json", max_bytes=max_bytes)
    summary = ImportSummary(source=source, path=str(file))
    if source == "mem0":
        parsed = mem0.parse(file, data, user_id=user_id, max_chars=max_chars)
        return write(memory, parsed, summary, dedupe=True, progress=progress)
    owner = check_user_id(user_id)
    module = chatgpt if source == "chatgpt" else claude
    parsed = module.parse(file, data, user_id=owner, max_chars=max_chars)
    return write(memory, parsed, summary, dedupe=False, progress=progress)
