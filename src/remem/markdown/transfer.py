"""``remem export --format markdown DIR`` and ``remem import DIR``: memories as Markdown between any two stores.

The export writes ``DIR/<user>/*.md`` in exactly the Markdown store's format (:mod:`remem.markdown.fmt`; user
directories and file names as :mod:`remem.markdown.names`), from any store, deleted memories in ``trash.md``. It
is lossless for every field of a record — text, categories, kind, times (microseconds), ids, source ids,
speaker, role, session, seq, metadata, version — so an import gives back the same records. History is not in
it: it travels with the JSONL export (``remem export FILE``), as before.

The import reads such a directory (written by this export, by the Markdown store itself, or by hand: a line
without an id comment becomes a new memory), validates every file first — any problem is an
:class:`~remem.errors.ImportFormatError` naming file and line, and nothing is written — then loads the records as
one change of the write path, like the JSONL import: ids that exist are skipped unless ``overwrite``, an id of
another user is refused, and each imported memory gets an ``ADD`` event by actor ``import``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ImportFormatError, RememError, ValidationError
from ..models import EventType, HistoryEvent, MemoryRecord, new_id, utcnow
from ..parts import HasParts, MemoryParts, parts_of
from ..stores.base import MemoryFilter
from ..validation import check_categories, check_text, check_user_id
from ..writer import Change
from .files import atomic_write, decode, markdown_files, remove
from .fmt import TRASH_FILE, file_of, item_categories, parse, render
from .names import OWN_FILES, category_of_file, encode, user_of_dir

PAGE = 10_000


def _all_records(parts: MemoryParts, user_id: str) -> list[MemoryRecord]:
    flt = MemoryFilter(user_id=user_id, deleted=None)
    out: list[MemoryRecord] = []
    while True:
        page = parts.store.scroll(flt, offset=len(out), limit=PAGE, order="asc")
        out += page
        if len(page) < PAGE:
            return out


def export_markdown(target: MemoryParts | HasParts, directory: str | Path, *, user_id: str | None = None) -> int:
    """Write every memory (live and deleted) of ``user_id`` (None: every user in history) under ``directory``;
    returns how many. A user's ``.md`` files already there are replaced (stale category files removed), so
    exporting into a git working tree again gives a diff of what changed. ValidationError if ``directory``'s
    parent does not exist."""
    parts = parts_of(target)
    root = Path(directory)
    if not root.parent.is_dir():
        raise ValidationError(f"cannot export to {root}: the folder {root.parent} does not exist", path=str(root))
    root.mkdir(exist_ok=True)
    users = [check_user_id(user_id)] if user_id is not None else parts.history.users()
    count = 0
    for uid in users:
        records = _all_records(parts, uid)
        if not records:
            continue
        folder = root / encode(uid, what="user id")
        folder.mkdir(exist_ok=True)
        layout: dict[str, list[MemoryRecord]] = {}
        for r in records:
            layout.setdefault(file_of(r), []).append(r)
        for name, chosen in sorted(layout.items()):
            title = chosen[0].categories[0] if chosen[0].categories else None
            atomic_write(folder / name, render(name, chosen, title=title).encode("utf-8"))
        for name in markdown_files(folder):
            if name not in layout:
                remove(folder / name)
        count += len(records)
    return count


def read_markdown(directory: str | Path, *, max_chars: int) -> list[MemoryRecord]:
    """Every record of an exported directory (``DIR/<user>/*.md``), validated; ImportFormatError (file:line)."""
    root = Path(directory)
    if not root.is_dir():
        raise ImportFormatError(f"{root} is not a directory", path=str(root))
    users = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not users:
        hint = " (it holds .md files: put them in a folder named after the user)" if markdown_files(root) else ""
        raise ImportFormatError(f"{root} has no user folders (expected {root}/<user>/*.md){hint}", path=str(root))
    records: list[MemoryRecord] = []
    seen: dict[str, str] = {}
    now = utcnow()
    for folder in users:
        try:
            uid = user_of_dir(folder.name)
        except RememError as exc:
            raise ImportFormatError(f"{folder}: not a user folder ({exc})", path=str(folder)) from exc
        for name, path in sorted(markdown_files(folder).items()):
            records += _read_file(uid, name, path, seen, now, max_chars)
    return records


def _read_file(user_id: str, name: str, path: Path, seen: dict[str, str], now: Any,
               max_chars: int) -> list[MemoryRecord]:
    text, problem = decode(path.read_bytes(), str(path))
    if problem is not None:
        raise ImportFormatError(str(problem), path=str(path), line=problem.line)
    assert text is not None
    category = None
    if name.removesuffix(".md") not in OWN_FILES:
        try:
            category = category_of_file(name)
        except RememError as exc:
            raise ImportFormatError(f"{path}:1: {exc}", path=str(path), line=1) from exc
    result = parse(text, name=name, path=str(path), category=category)
    if result.problems:
        first = result.problems[0]
        raise ImportFormatError(str(first), path=str(path), line=first.line)
    out = []
    trash = name == TRASH_FILE
    for item in result.items:
        where = f"{path}:{item.line}"
        f = item.fields
        try:
            text_ = check_text(item.text, max_chars)
            cats = check_categories(item_categories(item))
        except RememError as exc:
            raise ImportFormatError(f"{where}: {exc}", path=str(path), line=item.line) from exc
        memory_id = item.id or new_id()
        if memory_id in seen:
            raise ImportFormatError(f"{where}: memory id {memory_id} appears twice (also {seen[memory_id]})",
                                    path=str(path), line=item.line)
        seen[memory_id] = where
        created = f.get("created", now)
        out.append(MemoryRecord(
            id=memory_id, user_id=user_id, text=text_, kind=f.get("kind", "fact"), categories=cats,
            created_at=created, updated_at=f.get("updated", created), observed_at=f.get("at"),
            source_ids=list(f.get("src", [])), role=f.get("role"), speaker=f.get("speaker"),
            session_id=f.get("session"), seq=f.get("seq"), metadata=dict(f.get("meta", {})), version=f.get("v", 1),
            deleted_at=(f.get("deleted") or now) if trash else None,
        ))
    return out


def import_markdown(target: MemoryParts | HasParts, directory: str | Path, *, overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Validate then load an exported directory (see the module docstring); returns counts of imported and
    skipped memories (``events``: the ADD events recorded)."""
    parts = parts_of(target)
    records = read_markdown(directory, max_chars=parts.settings.max_text_chars)
    users = sorted({r.user_id for r in records})
    with parts.writer.users_lock(users):
        anyone = MemoryFilter(user_id=None, all_users=True, deleted=None)
        ids = [r.id for r in records]
        existing: dict[str, MemoryRecord] = {}
        for start in range(0, len(ids), 1000):
            existing.update((r.id, r) for r in parts.store.get(ids[start:start + 1000], anyone))
        for r in records:
            other = existing.get(r.id)
            if other is not None and other.user_id != r.user_id:
                raise ImportFormatError(f"memory id {r.id} already belongs to another user here; nothing was "
                                        "imported", memory_id=r.id)
        todo = [r for r in records if overwrite or r.id not in existing]
        now = utcnow()
        events = [HistoryEvent(memory_id=r.id, user_id=r.user_id, event=EventType.ADD, new_text=r.text,
                               actor="import", created_at=now, snapshot=r,
                               reason=f"imported from Markdown ({os.path.basename(str(directory))})") for r in todo]
        changes = [Change(r.user_id, r.id, existing.get(r.id), r) for r in todo]
        parts.writer.apply(changes, events, replace_history=[r.id for r in todo if r.id in existing],
                           progress=progress)
    return {"memories": len(todo), "events": len(events), "skipped": len(records) - len(todo)}
