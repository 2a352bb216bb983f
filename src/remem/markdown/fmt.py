"""The Markdown format of a user's memories: one memory per list item, remem's fields in a trailing comment.

A file (``food.md``; ``profile.md``, ``trash.md``, ``uncategorized.md`` are remem's own)::

    # food

    - Alice loves green tea in the morning <!-- id=5b1c6f3e-… kind=fact created=2024-05-08T13:56:00Z -->
    - A memory over two lines: continuation lines
      are indented by two spaces <!-- id=… kind=episode at=2023-05-08T13:56:00Z src=D1:3 speaker=Caroline -->

Rules (what :func:`parse` accepts, and exactly what :func:`render` writes):

- ``# title`` (level 1) is the file's title, written by remem and ignored when read.
- ``## name`` starts a section whose memories have category ``name`` (``profile.md`` and ``trash.md`` use
  sections; in other files the category is the file's). Deeper headings are refused.
- ``- text`` (or ``*``/``+``) starts a memory; lines indented by two spaces (or a tab) continue it, blank lines
  inside it included. A line a person adds without a comment is a new memory (a ``fact``).
- The comment at the end of a memory's last line holds remem's fields as ``key=value``: ``id`` (always),
  ``kind``, ``at`` (observed), ``created``, ``updated`` (if not ``created``), ``deleted`` (trash only), ``v``
  (version, if not 1), ``src`` (source ids), ``also`` (categories besides the file's or section's; when the
  memory's first category is another one, ``also`` lists them all, in order), ``speaker``, ``role``,
  ``session``, ``seq``, ``meta`` (metadata, JSON). A value is a bare word, or JSON when it holds spaces or punctuation. Times
  are UTC ISO 8601 with a ``Z`` (microseconds when not zero).
- A lone ``<!-- … -->`` line is a note and ignored; any other line outside a memory is an error.

Where a memory goes: deleted ones to ``trash.md`` (a section per first category); one with a profile category
(``personal_details``, ``preferences``: the chat agent's core facts) to ``profile.md``, in that category's
section; else the file of its first category; ``uncategorized.md`` without one.

Errors are :class:`FileProblem`s (file, line, message; never the memory text, which stays out of logs).
Rendering is deterministic: sections in a fixed order, memories by time then id, so a change to one memory is a
one-line diff.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from ..models import MemoryRecord
from .names import PROFILE, TRASH, UNCATEGORIZED

#: Categories that make up the profile (the chat agent's core facts: ``remem.pipeline.signatures.CORE_CATEGORIES``).
PROFILE_CATEGORIES = ("personal_details", "preferences")
PROFILE_FILE, TRASH_FILE, UNCATEGORIZED_FILE = f"{PROFILE}.md", f"{TRASH}.md", f"{UNCATEGORIZED}.md"
PROFILE_NOTE = ("<!-- The user's core facts, read by the chat agent. One memory per '- ' line; the comment at the "
                "end of a line is remem's (keep it); delete a line to delete that memory. -->")
TRASH_NOTE = "<!-- Deleted memories. Move a line back into a category file to restore it. -->"

_ITEM = re.compile(r"^[-*+](?:[ \t]|$)")
_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*))?$")
_NOTE = re.compile(r"^<!--.*-->\s*$")
_ID_IN_COMMENT = re.compile(r"<!--.*\bid\s*=.*-->\s*$")
_DAMAGED = re.compile(r"<!-|-->|\bid\s*[=:]\s*[0-9a-fA-F]{8}-", re.IGNORECASE)
_KEY = re.compile(r"([a-z]+)=")
_BARE = re.compile(r"[\w.:@+/#'-]+")
KEYS = ("id", "kind", "at", "created", "updated", "deleted", "v", "src", "also", "speaker", "role", "session",
        "seq", "meta")


class FileProblem(BaseModel):
    """A line of a user's file remem cannot read; the file is not applied until it is fixed."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Item:
    """One memory as a file states it."""

    line: int
    text: str
    category: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # parsed comment values (empty: a new memory)

    @property
    def id(self) -> str | None:
        value = self.fields.get("id")
        return value if isinstance(value, str) else None


def item_categories(item: Item) -> list[str]:
    """An item's categories: its section's, then ``also`` — or ``also`` alone when it names the section (the
    memory's first category is another one)."""
    also = list(item.fields.get("also", ()))
    if item.category is None or item.category in also:
        return also
    return [item.category, *also]


@dataclass
class ParsedFile:
    name: str
    items: list[Item]
    problems: list[FileProblem]


# -- values ------------------------------------------------------------------------------------------------------
def fmt_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json(value: Any) -> str:
    # Compact JSON that cannot end the comment: '<' and '>' escaped (no '-->' or '<!--' inside).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def _bare(value: str) -> bool:
    return bool(_BARE.fullmatch(value)) and "--" not in value and not value.startswith("-")


def _word(value: str) -> str:
    return value if _bare(value) else _json(value)


def _words(values: Sequence[str]) -> str:
    return ",".join(values) if all(_bare(v) and "," not in v for v in values) else _json(list(values))


def comment(record: MemoryRecord, *, deleted: bool, section: str | None) -> str:
    """The trailing comment of ``record``, written in ``section`` (its file's or section's category)."""
    parts = [f"id={record.id}", f"kind={record.kind}"]
    if record.observed_at is not None:
        parts.append(f"at={fmt_time(record.observed_at)}")
    parts.append(f"created={fmt_time(record.created_at)}")
    if record.updated_at != record.created_at:
        parts.append(f"updated={fmt_time(record.updated_at)}")
    if deleted and record.deleted_at is not None:
        parts.append(f"deleted={fmt_time(record.deleted_at)}")
    if record.version != 1:
        parts.append(f"v={record.version}")
    if record.source_ids:
        parts.append(f"src={_words(record.source_ids)}")
    also = record.categories[1:] if record.categories and record.categories[0] == section else record.categories
    if also:
        parts.append(f"also={_words(also)}")
    for key, value in (("speaker", record.speaker), ("role", record.role), ("session", record.session_id)):
        if value is not None:
            parts.append(f"{key}={_word(value)}")
    if record.seq is not None:
        parts.append(f"seq={record.seq}")
    if record.metadata:
        parts.append(f"meta={_json(record.metadata)}")
    return "<!-- " + " ".join(parts) + " -->"


def _parse_comment(body: str) -> dict[str, Any]:
    """``key=value`` pairs of a comment; ValueError naming the key that is wrong."""
    out: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    i, n = 0, len(body)
    while True:
        while i < n and body[i].isspace():
            i += 1
        if i >= n:
            break
        m = _KEY.match(body, i)
        if m is None:
            raise ValueError("expected key=value (remem's fields) in the comment")
        key = m.group(1)
        if key not in KEYS:
            raise ValueError(f"unknown field {key!r} in remem's comment")
        if key in out:
            raise ValueError(f"field {key!r} appears twice in remem's comment")
        i = m.end()
        raw: Any
        if i < n and body[i] in '"[{':
            try:
                raw, i = decoder.raw_decode(body, i)
            except json.JSONDecodeError:
                raise ValueError(f"field {key!r}: invalid JSON value") from None
        else:
            j = i
            while j < n and not body[j].isspace():
                j += 1
            raw, i = body[i:j], j
            if raw == "":
                raise ValueError(f"field {key!r} has no value")
        out[key] = _convert(key, raw)
    if "id" not in out:
        raise ValueError("remem's comment has no id (a damaged id comment?)")
    return out


def _convert(key: str, raw: Any) -> Any:
    try:
        if key == "id":
            return str(uuid.UUID(_str(raw)))
        if key == "kind":
            if raw not in ("fact", "episode"):
                raise ValueError
            return raw
        if key in ("at", "created", "updated", "deleted"):
            return parse_time(_str(raw))
        if key in ("v", "seq"):
            number = int(_str(raw))
            if key == "v" and number < 1:
                raise ValueError
            return number
        if key in ("src", "also"):
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
                raise ValueError
            return items
        if key == "meta":
            if not isinstance(raw, dict):
                raise ValueError
            return raw
        return _str(raw)
    except ValueError:
        what = {"id": "a UUID", "kind": "fact or episode", "v": "a positive integer", "seq": "an integer",
                "meta": "a JSON object", "src": "a list of ids", "also": "a list of categories"}.get(key, "a time")
        if key in ("speaker", "role", "session"):
            what = "a word or a JSON string"
        raise ValueError(f"field {key!r} must be {what}") from None


def _str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError  # noqa: TRY004 - caught in _convert, which names the field
    return raw


# -- parsing -----------------------------------------------------------------------------------------------------
def default_category(name: str, category: str | None) -> str | None:
    """The category of memories before any ``##`` heading in file ``name``."""
    if name == PROFILE_FILE:
        return PROFILE_CATEGORIES[0]
    if name in (TRASH_FILE, UNCATEGORIZED_FILE):
        return None
    return category


def parse(text: str, *, name: str, path: str, category: str | None) -> ParsedFile:
    """The memories of one file (see the module docstring). ``category`` is the file's (None for remem's own
    files); ``path`` names the file in problems."""
    problems: list[FileProblem] = []
    items: list[Item] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines and all(line.endswith("\r") for line in lines):
        lines = [line[:-1] for line in lines]  # a CRLF file
    section = default_category(name, category)
    current: list[str] = []
    start = 0
    blanks = 0

    def problem(line: int, message: str) -> None:
        problems.append(FileProblem(path=path, line=line, message=message))

    def finish() -> None:
        if current:
            item = _item(current, start, section, problem)
            if item is not None:
                items.append(item)
            current.clear()

    for number, line in enumerate(lines, start=1):
        if current and line.startswith(("  ", "\t")):
            current.extend([""] * blanks)
            current.append(line[2:] if line.startswith("  ") else line[1:])
            blanks = 0
            continue
        if not line.strip():
            blanks += 1 if current else 0
            continue
        finish()
        blanks = 0
        if _ITEM.match(line):
            current.append(line[2:] if len(line) > 1 else "")
            start = number
            continue
        heading = _HEADING.match(line)
        if heading:
            level, title = len(heading.group(1)), (heading.group(2) or "").strip()
            if level == 2:
                if not title:
                    problem(number, "a '##' heading needs a category name")
                else:
                    section = title.lower()
            elif level > 2:
                problem(number, "only '# title' and '## category' headings are allowed")
            continue
        if _NOTE.match(line):
            if _ID_IN_COMMENT.match(line):
                problem(number, "a remem id comment on its own line: it must end its memory's last line")
            continue
        problem(number, "text outside a list item (start a memory with '- ')")
    finish()
    return ParsedFile(name=name, items=items, problems=problems)


def _item(lines: list[str], start: int, section: str | None, problem: Any) -> Item | None:
    last = start + len(lines) - 1
    for offset, line in enumerate(lines[:-1]):
        if _ID_IN_COMMENT.search(line):
            problem(start + offset, "remem's id comment must end the memory's last line")
            return None
    tail = lines[-1]
    fields: dict[str, Any] = {}
    opener = tail.rfind("<!--")
    stripped = tail.rstrip()
    if opener >= 0 and stripped.endswith("-->") and len(stripped) - 3 >= opener + 4:
        try:
            fields = _parse_comment(stripped[opener + 4:-3])
        except ValueError as exc:
            problem(last, f"damaged id comment: {exc}")
            return None
        tail = tail[:opener]
    text = "\n".join([*lines[:-1], tail]).strip()
    if not fields and _DAMAGED.search(text):
        problem(last, "damaged id comment (expected '<!-- id=… -->' at the end of the line)")
        return None
    if not text:
        problem(start, "empty memory (delete the whole line to delete a memory)")
        return None
    return Item(line=start, text=text, category=section, fields=fields)


# -- rendering ---------------------------------------------------------------------------------------------------
def sort_key(record: MemoryRecord) -> tuple[datetime, str]:
    return (record.observed_at or record.created_at, record.id)


def item_lines(record: MemoryRecord, *, deleted: bool) -> list[str]:
    lines = record.text.split("\n")
    out = ["- " + lines[0]] + [("  " + line) if line else "" for line in lines[1:]]
    out[-1] = f"{out[-1]} {comment(record, deleted=deleted, section=placement(record)[1])}"
    return out


def placement(record: MemoryRecord) -> tuple[str, str | None]:
    """(file, section category) of a record (see the module docstring)."""
    from .names import category_file

    first = record.categories[0] if record.categories else None
    if record.deleted_at is not None:
        return TRASH_FILE, first
    core = [c for c in record.categories if c in PROFILE_CATEGORIES]
    if core:
        return PROFILE_FILE, core[0]
    if first is None:
        return UNCATEGORIZED_FILE, None
    return category_file(first), first


def file_of(record: MemoryRecord) -> str:
    """The file a record is written to (see :func:`placement`)."""
    return placement(record)[0]


def render(name: str, records: Iterable[MemoryRecord], *, title: str | None = None) -> str:
    """The canonical text of file ``name`` holding ``records`` (all of which :func:`file_of` puts there)."""
    chosen = sorted(records, key=sort_key)
    trash = name == TRASH_FILE
    head = {PROFILE_FILE: "Profile", TRASH_FILE: "Trash", UNCATEGORIZED_FILE: "Uncategorized"}.get(name, title or name)
    out = [f"# {head}", ""]
    note = {PROFILE_FILE: PROFILE_NOTE, TRASH_FILE: TRASH_NOTE}.get(name)
    if note:
        out += [note, ""]
    if name in (PROFILE_FILE, TRASH_FILE):
        sections: dict[str | None, list[MemoryRecord]] = {}
        for r in chosen:
            sections.setdefault(placement(r)[1], []).append(r)
        order = sorted(sections, key=lambda c: (c is not None, c not in PROFILE_CATEGORIES,
                                               PROFILE_CATEGORIES.index(c) if c in PROFILE_CATEGORIES else 0, c or ""))
        for category in order:
            if category is not None:
                out += [f"## {category}", ""]
            for r in sections[category]:
                out += item_lines(r, deleted=trash)
            out.append("")
    else:
        for r in chosen:
            out += item_lines(r, deleted=trash)
        out.append("")
    while len(out) > 1 and out[-1] == "" and out[-2] == "":
        out.pop()
    return "\n".join(out) if out[-1] == "" else "\n".join(out) + "\n"
