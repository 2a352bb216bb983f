"""Export and import in JSONL: lossless (records incl. deleted ones, timestamps, versions, hashes, history).

Format, one JSON object per line, UTF-8:
``{"type": "header", "format": "remem-export", "version": 1, ...}`` first, then ``{"type": "memory",
"record": {...}}`` lines, then ``{"type": "event", "event": {...}}`` lines (oldest first), then the graph's
``entity``/``relation``/``graph_event`` lines (:mod:`remem.graph.transfer`). Vectors are not exported: import
re-embeds with the importing side's embedder, so a file moves between embedders.

Import validates the whole file before writing (UTF-8, JSON, schema, user ids, text limits); any error names
its line and nothing is written. Memory ids that already exist are skipped (with their events) unless
``overwrite=True``, when the file's record and history replace them; an id that exists for another user is
refused. The load itself is all-or-nothing too, and crash-safe (see :func:`import_jsonl`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError as PydanticValidationError

from .errors import ImportFormatError, RememError, ValidationError
from .graph.transfer import GRAPH_LINES, GraphLines, graph_users, write_graph_lines
from .models import EventType, HistoryEvent, MemoryRecord, content_hash, utcnow
from .parts import MemoryParts
from .stores import MemoryFilter
from .validation import check_event, check_import_line, check_record, check_text, check_user_id
from .writer import Change

FORMAT = "remem-export"
VERSION = 1
BATCH = 256
#: Records per store page when exporting (a store pages by offset: large pages keep that cheap).
EXPORT_PAGE = 10_000


def export_jsonl(parts: MemoryParts, path: Path, *, user_id: str | None) -> int:
    """Write the export file (atomically: a temporary file renamed at the end); returns the records written."""
    users = [user_id] if user_id is not None else sorted({*parts.history.users(), *graph_users(parts)})
    tmp = path.with_name(path.name + ".tmp")
    if not path.parent.is_dir():
        raise ValidationError(f"cannot export to {path}: the folder {path.parent} does not exist", path=str(path))
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # The file is written beside it and renamed over it: that would replace a device, a pipe or a link.
        raise ValidationError(f"cannot export to {path}: it exists and is not a regular file (a device, a pipe, a "
                              "link or a directory); choose a new file name", path=str(path))
    try:
        with tmp.open("w", encoding="utf-8") as out:
            count = _write_export(parts, out, users)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _write_export(parts: MemoryParts, out: TextIO, users: list[str]) -> int:
    count = 0
    header = {"type": "header", "format": FORMAT, "version": VERSION, "exported_at": utcnow().isoformat(),
              "embedder": parts.embedder.name, "users": len(users)}
    out.write(json.dumps(header) + "\n")
    for uid in users:
        flt = MemoryFilter(user_id=uid, deleted=None)
        total = parts.store.count(flt)
        offset = 0
        while offset < total:
            page = parts.store.scroll(flt, offset=offset, limit=EXPORT_PAGE, order="asc")
            if not page:
                break
            for record in page:
                out.write(json.dumps({"type": "memory", "record": record.model_dump(mode="json")},
                                     ensure_ascii=False) + "\n")
                count += 1
            offset += len(page)
    for uid in users:
        for event in parts.history.iter_user(uid):
            data = event.model_dump(mode="json", exclude={"id"})
            out.write(json.dumps({"type": "event", "event": data}, ensure_ascii=False) + "\n")
    write_graph_lines(parts, out, users)  # graph memory: entity, relation, graph_event lines (remem.graph)
    return count


def _parse(path: Path, max_chars: int, graph: GraphLines) -> tuple[list[MemoryRecord], list[HistoryEvent]]:
    records: list[MemoryRecord] = []
    events: list[HistoryEvent] = []
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc}", path=str(path)) from exc
    owner: dict[str, str] = {}  # memory id -> user id, from the memory lines
    event_lines: list[int] = []
    seen_header = False
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        check_import_line(raw, where, number, max_chars)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})",
                                    line=number) from exc
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, and an integer of more than 4,300 digits
            raise ImportFormatError(f"{where}: not valid JSON ({getattr(exc, 'msg', exc)})", line=number) from exc
        if not isinstance(obj, dict) or "type" not in obj:
            raise ImportFormatError(f"{where}: expected an object with a 'type'", line=number)
        kind = obj["type"]
        try:
            if not seen_header or kind == "header":
                if kind != "header" or obj.get("format") != FORMAT:
                    raise ImportFormatError(f"{where}: not a remem export (missing header)", line=number)
                if obj.get("version") != VERSION:
                    raise ImportFormatError(f"{where}: unsupported export version {obj.get('version')!r}",
                                            line=number)
                seen_header = True
            elif kind == "memory":
                record = MemoryRecord.model_validate(obj["record"])
                if record.kind not in ("episode", "fact"):  # chunks are index entries, rebuilt, never imported
                    raise ImportFormatError(f"{where}: a memory's kind must be episode or fact, not "
                                            f"{record.kind!r}", line=number)
                check_record(record, max_chars)
                check_user_id(record.user_id)
                check_text(record.text, max_chars)
                if record.id in owner:
                    raise ImportFormatError(f"{where}: memory id {record.id} appears twice", line=number)
                digest = content_hash(record.text)
                if record.hash != digest:  # a hand-edited text: dedup must see the text actually stored
                    record = record.model_copy(update={"hash": digest})
                owner[record.id] = record.user_id
                records.append(record)
            elif kind == "event":
                event = HistoryEvent.model_validate(obj["event"])
                check_event(event)
                check_user_id(event.user_id)
                events.append(event)
                event_lines.append(number)
            elif kind in GRAPH_LINES:  # graph memory (remem.graph.transfer)
                graph.parse(kind, obj)
            else:
                raise ImportFormatError(f"{where}: unknown line type {kind!r}", line=number)
        except ImportFormatError:
            raise
        except (PydanticValidationError, KeyError, TypeError) as exc:
            raise ImportFormatError(f"{where}: invalid {kind}: {exc}", line=number) from exc
        except RememError as exc:
            raise ImportFormatError(f"{where}: {exc}", line=number) from exc
    if not seen_header:
        raise ImportFormatError(f"{path} is empty", path=str(path))
    for event, number in zip(events, event_lines, strict=True):
        if event.memory_id not in owner:  # history describes a memory of the file, or it is a stray line
            raise ImportFormatError(f"{path}:{number}: event of memory {event.memory_id}, which is not in the file",
                                    line=number)
        if event.snapshot is not None and (event.snapshot.id != event.memory_id
                                           or event.snapshot.user_id != event.user_id):
            raise ImportFormatError(f"{path}:{number}: the event's snapshot describes another memory or user",
                                    line=number)
        if owner.get(event.memory_id, event.user_id) != event.user_id:
            raise ImportFormatError(
                f"{path}:{number}: event of memory {event.memory_id} names user {event.user_id}, "
                f"but the memory belongs to {owner[event.memory_id]}",
                line=number,
            )
    return records, events


def import_jsonl(
    parts: MemoryParts, path: Path, *, overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Validate then load an export file; returns counts of imported/skipped memories and events.

    All or nothing: the file is validated before anything is written; the load is one change of the write
    path (:class:`remem.writer.Writer`), under the locks of every user in the file, so a store failure undoes
    the points already written (and puts back the records an ``overwrite`` replaced) and records no history,
    while a crash part-way is finished by recovery on the next open. History and store agree afterwards: when
    a memory's last event in the file does not describe its record (a hand-edited file, or no history at all),
    an event by actor ``import`` records the imported state. A memory id that exists for another user is
    refused.
    """
    graph = GraphLines()
    records, events = _parse(path, parts.settings.max_text_chars, graph)
    users = sorted({r.user_id for r in records} | {e.user_id for e in events} | graph.users())
    with parts.writer.users_lock(users):
        graph.check(parts)
        existing: dict[str, MemoryRecord] = {}
        ids = [r.id for r in records]
        anyone = MemoryFilter(user_id=None, all_users=True, deleted=None)
        for start in range(0, len(ids), 1000):
            existing.update((r.id, r) for r in parts.store.get(ids[start : start + 1000], anyone))
        for r in records:
            other = existing.get(r.id)
            if other is not None and other.user_id != r.user_id:
                raise ImportFormatError(
                    f"memory id {r.id} already belongs to another user here; nothing was imported", memory_id=r.id
                )
        skip = set() if overwrite else set(existing)
        todo = [r for r in records if r.id not in skip]
        todo_events = [e for e in events if e.memory_id not in skip]
        replaced = [r.id for r in todo if r.id in existing]
        changes = [Change(r.user_id, r.id, existing.get(r.id), r) for r in todo]
        parts.writer.apply(changes, todo_events + _agreeing_events(todo, todo_events), replace_history=replaced,
                           progress=progress)
        graph_counts = graph.load(parts, overwrite=overwrite)
    return {"memories": len(todo), "events": len(todo_events), "skipped": len(skip), **graph_counts}


def _agreeing_events(records: list[MemoryRecord], events: list[HistoryEvent]) -> list[HistoryEvent]:
    """Events that make history describe each imported record (history is the system of record)."""
    last: dict[str, HistoryEvent] = {}
    for e in events:
        if e.snapshot is not None:
            last[e.memory_id] = e
    extra = []
    now = utcnow()
    for r in records:
        prior = last.get(r.id)
        if prior is not None and prior.snapshot == r:
            continue
        extra.append(HistoryEvent(
            memory_id=r.id, user_id=r.user_id, event=EventType.ADD if prior is None else EventType.UPDATE,
            old_text=prior.snapshot.text if prior is not None and prior.snapshot is not None else None,
            new_text=r.text, actor="import", created_at=now, snapshot=r,
            reason="imported without history" if prior is None else "the file's record differs from its history",
        ))
    return extra
