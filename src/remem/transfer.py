"""Export and import in JSONL: lossless (records incl. deleted ones, timestamps, versions, hashes, history).

Format, one JSON object per line, UTF-8:
``{"type": "header", "format": "remem-export", "version": 1, ...}`` first, then ``{"type": "memory",
"record": {...}}`` lines, then ``{"type": "event", "event": {...}}`` lines (oldest first). Vectors are not
exported: import re-embeds with the importing side's embedder, so a file moves between embedders.

Import validates the whole file before writing (UTF-8, JSON, schema, user ids, text limits); any error names
its line and nothing is written. Memory ids that already exist are skipped (with their events) unless
``overwrite=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from .errors import ImportFormatError, RememError
from .models import HistoryEvent, MemoryRecord, utcnow
from .stores import MemoryFilter
from .validation import check_text, check_user_id

if TYPE_CHECKING:
    from .memory.core import Memory

FORMAT = "remem-export"
VERSION = 1


def export_jsonl(memory: Memory, path: Path, *, user_id: str | None) -> int:
    """Write the export file; returns the number of memory records written."""
    users = [user_id] if user_id is not None else memory.users()
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        header = {"type": "header", "format": FORMAT, "version": VERSION, "exported_at": utcnow().isoformat(),
                  "embedder": memory.embedder.name, "users": len(users)}
        out.write(json.dumps(header) + "\n")
        for uid in users:
            flt = MemoryFilter(user_id=uid, deleted=None)
            total = memory.store.count(flt)
            offset = 0
            while offset < total:
                page = memory.store.scroll(flt, offset=offset, limit=1000, order="asc")
                if not page:
                    break
                for record in page:
                    out.write(json.dumps({"type": "memory", "record": record.model_dump(mode="json")},
                                         ensure_ascii=False) + "\n")
                    count += 1
                offset += len(page)
        for uid in users:
            for event in memory.log.for_user(uid):
                data = event.model_dump(mode="json", exclude={"id"})
                out.write(json.dumps({"type": "event", "event": data}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return count


def _parse(path: Path, max_chars: int) -> tuple[list[MemoryRecord], list[HistoryEvent]]:
    records: list[MemoryRecord] = []
    events: list[HistoryEvent] = []
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc}", path=str(path)) from exc
    if not raw_lines:
        raise ImportFormatError(f"{path} is empty", path=str(path))
    seen_ids: set[str] = set()
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})",
                                    line=number) from exc
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"{where}: not valid JSON ({exc.msg})", line=number) from exc
        if not isinstance(obj, dict) or "type" not in obj:
            raise ImportFormatError(f"{where}: expected an object with a 'type'", line=number)
        kind = obj["type"]
        try:
            if number == 1 or kind == "header":
                if kind != "header" or obj.get("format") != FORMAT:
                    raise ImportFormatError(f"{where}: not a remem export (missing header)", line=number)
                if obj.get("version") != VERSION:
                    raise ImportFormatError(f"{where}: unsupported export version {obj.get('version')!r}",
                                            line=number)
            elif kind == "memory":
                record = MemoryRecord.model_validate(obj["record"])
                check_user_id(record.user_id)
                check_text(record.text, max_chars)
                if record.id in seen_ids:
                    raise ImportFormatError(f"{where}: memory id {record.id} appears twice", line=number)
                seen_ids.add(record.id)
                records.append(record)
            elif kind == "event":
                event = HistoryEvent.model_validate(obj["event"])
                check_user_id(event.user_id)
                events.append(event)
            else:
                raise ImportFormatError(f"{where}: unknown line type {kind!r}", line=number)
        except ImportFormatError:
            raise
        except (PydanticValidationError, KeyError, TypeError) as exc:
            raise ImportFormatError(f"{where}: invalid {kind}: {exc}", line=number) from exc
        except RememError as exc:
            raise ImportFormatError(f"{where}: {exc}", line=number) from exc
    return records, events


def import_jsonl(
    memory: Memory, path: Path, *, overwrite: bool = False, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Validate then load an export file; returns counts of imported/skipped memories and events."""
    records, events = _parse(path, memory.settings.max_text_chars)
    skip: set[str] = set()
    if not overwrite:
        by_user: dict[str, list[str]] = {}
        for r in records:
            by_user.setdefault(r.user_id, []).append(r.id)
        for uid, ids in by_user.items():
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                skip.update(r.id for r in memory.store.get(chunk, MemoryFilter(user_id=uid, deleted=None)))
    todo = [r for r in records if r.id not in skip]
    todo_events = [e for e in events if e.memory_id not in skip]
    done = 0
    batch = 256
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        vectors = memory.embedder.embed([r.text for r in chunk])
        with memory.log.transaction() as conn:
            if start == 0:
                # Events first, in the first transaction: if the store write below fails, nothing is recorded.
                memory.log.record(todo_events, conn)
            memory.store.upsert(chunk, vectors)
        done += len(chunk)
        if progress is not None:
            progress(done, len(todo))
    if not todo and todo_events:
        memory.log.record(todo_events)
    return {"memories": len(todo), "events": len(todo_events), "skipped": len(skip)}
