"""Input checks of every entry point (Python API, CLI, REST, MCP, import). Each raises a
:class:`~remem.errors.ValidationError` subclass naming the field (``message 0 content``, ``metadata.key``,
``since``) *before* anything is written, so a rejected call leaves no trace.

The primitive checks and the limits live in :mod:`remem.bounds` (below the models); this module adds the rules
of each public method of :class:`remem.Memory` on top. One function per method (``check_add_args``,
``check_search_args``, ...) is called at the top of that method.
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .bounds import (  # re-exported (see __all__): the entry points use them
    INT64_MAX,
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    MAX_REASON_CHARS,
    check_bool,
    check_choice,
    check_datetime,
    check_float,
    check_int,
    check_label,
    check_metadata,
    check_optional_datetime,
    check_optional_label,
    check_str,
    fail,
    shown,
)
from .errors import ImportFormatError, InvalidUserIdError, ValidationError
from .models import HistoryEvent, MemoryRecord, Message

USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+\-]{0,127}")

#: Most messages one ``add`` call takes (REST requests are further bounded by the body size).
MAX_MESSAGES = 10_000
#: ``limit`` of search and list.
MAX_LIMIT = 1000
#: ``offset`` of list: a page at offset n loads n + limit records (page deeper with since/until, or export).
MAX_OFFSET = 100_000
#: ``expand_neighbors`` of search (turns before and after each hit).
MAX_EXPAND = 10
#: Source ids given to one update.
MAX_SOURCE_IDS = 1000
#: ``batch_size`` of add_records.
MAX_BATCH = 10_000
#: One line of an import file (a record, or an event with its old text, new text and snapshot).
MAX_IMPORT_LINE_BYTES = 1_048_576
#: JSON nesting of an import line (the format itself needs 4; metadata adds at most 8).
MAX_IMPORT_DEPTH = 32


def check_user_id(user_id: object) -> str:
    """User ids: 1-128 chars, letters/digits first, then ``_ . @ : + -``. They are set by the host application."""
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise InvalidUserIdError(
            f"invalid user id {shown(user_id)}: use 1-128 characters from A-Z a-z 0-9 _ . @ : + - "
            "(starting with a letter or digit)",
            user_id=shown(user_id), field="user_id",
        )
    return user_id


_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def check_text(text: object, max_chars: int, what: str = "memory text") -> str:
    """A text (memory, query, chat message): not empty after stripping (nor made only of invisible characters
    such as zero-width spaces), at most ``max_chars`` characters (``REMEM_MAX_TEXT_CHARS``), no NUL, no lone
    surrogate. Returns the stripped text."""
    if isinstance(text, str) and len(text) > max_chars and len(text.strip()) > max_chars:
        stripped = text.strip()  # the precise message for the common case, before the character scan
        raise ValidationError(
            f"{what} has {len(stripped)} characters, more than the limit of {max_chars} (REMEM_MAX_TEXT_CHARS)",
            length=len(stripped), limit=max_chars, field=what,
        )
    stripped = check_str(text, what, max_len=max_chars, min_len=1, strip=True)
    if all(unicodedata.category(c) in _INVISIBLE for c in stripped):  # stops at the first visible character
        raise ValidationError(f"{what} is empty (only invisible or control characters)", field=what)
    return stripped


def check_categories(categories: Sequence[str] | None, field: str = "categories") -> list[str]:
    """At most 32 categories of 1-64 characters without control characters; lower-cased, stripped, unique.
    A bare string is one category."""
    if categories is None:
        return []
    if isinstance(categories, str):
        categories = [categories]
    if not isinstance(categories, (list, tuple)):
        raise fail(field, f"must be a list of strings, got {type(categories).__name__}")
    if len(categories) > MAX_CATEGORIES:
        raise fail(field, f"has {len(categories)} entries, more than the limit of {MAX_CATEGORIES}")
    out: list[str] = []
    for i, c in enumerate(categories):
        name = check_label(c, f"{field}[{i}]", max_len=MAX_CATEGORY_CHARS).strip().lower()
        if not name:
            raise fail(f"{field}[{i}]", "is empty")
        if name not in out:
            out.append(name)
    return out


KINDS = ("episode", "fact")


def check_kinds(kinds: Sequence[str] | None) -> list[str] | None:
    """A list of memory kinds (``episode``/``fact``); a bare string is refused (it would match letters)."""
    if kinds is None:
        return None
    if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) and k in KINDS for k in kinds):
        raise ValidationError(f"kinds must be a list of {', '.join(KINDS)}, got {shown(kinds)}", field="kinds")
    return list(kinds)


def check_limit(limit: object, maximum: int = MAX_LIMIT) -> int:
    return check_int(limit, "limit", minimum=1, maximum=maximum)


def check_offset(offset: object) -> int:
    return check_int(offset, "offset", minimum=0, maximum=MAX_OFFSET)


def check_range(since: object, until: object) -> None:
    """``since``/``until``: datetimes (naive = UTC) within range, ``since`` not after ``until``."""
    start = check_optional_datetime(since, "since")
    end = check_optional_datetime(until, "until")
    if start is not None and end is not None and start > end:
        raise ValidationError(f"since ({start.isoformat()}) is after until ({end.isoformat()})", field="since")


def check_memory_id(memory_id: object, field: str = "memory_id") -> str:
    """A memory id: a UUID string (canonical lower-case form returned)."""
    if not isinstance(memory_id, str) or not memory_id or len(memory_id) > 64:
        raise ValidationError(f"invalid memory id {shown(memory_id)}", field=field, memory_id=shown(memory_id))
    try:
        return str(uuid.UUID(memory_id))
    except ValueError:
        raise ValidationError(f"invalid memory id {shown(memory_id)}: not a UUID", field=field,
                              memory_id=shown(memory_id)) from None


def check_reason(reason: object) -> str | None:
    if reason is None:
        return None
    return check_str(reason, "reason", max_len=MAX_REASON_CHARS)


def check_actor(actor: object) -> str:
    return check_label(actor, "actor")


def check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise fail("progress", f"must be a callable progress(done, total), got {type(progress).__name__}")


# -- messages ------------------------------------------------------------------------------------------------
MessagesInput = str | Message | Mapping[str, Any] | Sequence[str | Message | Mapping[str, Any]]


def _pydantic_error(exc: PydanticValidationError, prefix: str, **context: Any) -> ValidationError:
    """A pydantic error of a model built from caller input, as one ValidationError naming the field."""
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValidationError):  # one of our checks, run as a validator: keep its message
        field = f"{prefix} {cause.context.get('field', '')}".strip()
        return ValidationError(f"{prefix} {cause.message}", **{**cause.context, **context, "field": field})
    loc = " ".join(str(p) for p in first.get("loc", ()))
    field = f"{prefix} {loc}".strip()
    return ValidationError(f"{field}: {first.get('msg', 'invalid')}", field=field, **context)


def check_message(message: Message, index: int) -> Message:
    """Re-check a Message instance field by field (it may have been built with ``model_construct``)."""
    where = f"message {index}"
    check_choice(message.role, f"{where} role", ("user", "assistant", "system", "tool"))
    check_str(message.content, f"{where} content", max_len=10**9)
    check_optional_label(message.name, f"{where} name")
    check_optional_label(message.id, f"{where} id")
    if message.timestamp is not None:
        check_datetime(message.timestamp, f"{where} timestamp")
    return message


def to_messages(messages: MessagesInput) -> list[Message]:
    """Normalise what callers pass to ``add``: a string, a Message, a dict, or a list of those (at most
    :data:`MAX_MESSAGES`)."""
    items: Sequence[Any]
    if isinstance(messages, (str, Message, Mapping)):
        items = [messages]
    elif isinstance(messages, Iterable) and not isinstance(messages, (bytes, bytearray, memoryview)):
        items = list(islice(messages, MAX_MESSAGES + 1))
    else:
        raise fail("messages", "must be a string, a Message, a dict or a list of those, got "
                   f"{type(messages).__name__}")
    if not items:
        raise ValidationError("no messages given", field="messages")
    if len(items) > MAX_MESSAGES:
        raise fail("messages", f"has more than the limit of {MAX_MESSAGES} messages per add", limit=MAX_MESSAGES)
    out: list[Message] = []
    for i, item in enumerate(items):
        if isinstance(item, Message):
            out.append(check_message(item, i))
        elif isinstance(item, str):
            try:
                out.append(Message(role="user", content=item))
            except PydanticValidationError as exc:
                raise _pydantic_error(exc, f"message {i}", index=i) from None
        elif isinstance(item, Mapping):
            try:
                out.append(Message.model_validate(dict(item)))
            except PydanticValidationError as exc:
                raise _pydantic_error(exc, f"message {i}", index=i) from None
        else:
            raise ValidationError(f"message {i} has unsupported type {type(item).__name__}", index=i,
                                  field=f"message {i}")
    return out


# -- one function per public method of Memory ----------------------------------------------------------------
def check_add_args(
    msgs: Sequence[Message], *, max_chars: int, metadata: object, session_id: object, infer: object, actor: object,
    progress: object,
) -> None:
    """:meth:`remem.Memory.add`, after :func:`to_messages`: message texts, metadata, session id, flags."""
    for i, m in enumerate(msgs):
        check_text(m.content, max_chars, f"message {i} content")
    if metadata is not None:
        check_metadata(metadata)
    check_optional_label(session_id, "session_id")
    check_bool(infer, "infer")
    check_actor(actor)
    check_progress(progress)


def check_record(record: object, max_chars: int, where: str = "record") -> MemoryRecord:
    """One prepared record (``add_records``, import): every field within the limits; ``where`` names it."""
    if not isinstance(record, MemoryRecord):
        raise fail(where, f"must be a MemoryRecord, got {type(record).__name__}")
    try:  # re-validate: model_copy(update=...) and model_construct skip the model's validators
        MemoryRecord.model_validate(record.model_dump())
    except PydanticValidationError as exc:
        raise _pydantic_error(exc, where) from None
    check_user_id(record.user_id)
    check_memory_id(record.id, f"{where} id")
    check_text(record.text, max_chars, f"{where} text")
    check_categories(record.categories, f"{where} categories")
    if len(record.source_ids) > MAX_SOURCE_IDS:
        raise fail(f"{where} source_ids", f"has {len(record.source_ids)} entries, more than {MAX_SOURCE_IDS}")
    for j, source in enumerate(record.source_ids):
        check_label(source, f"{where} source_ids[{j}]")
    for name in ("role", "speaker", "session_id"):
        check_optional_label(getattr(record, name), f"{where} {name}")
    check_metadata(record.metadata, f"{where} metadata")
    return record


def check_add_records_args(
    records: object, *, max_chars: int, actor: object, progress: object, dedupe: object, batch_size: object
) -> None:
    """:meth:`remem.Memory.add_records`: every record, and the options."""
    if not isinstance(records, (list, tuple)):
        raise fail("records", f"must be a list of MemoryRecord, got {type(records).__name__}")
    for i, r in enumerate(records):
        check_record(r, max_chars, f"record {i}")
    check_actor(actor)
    check_progress(progress)
    check_bool(dedupe, "dedupe")
    check_int(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH)


def check_update_args(
    *, max_chars: int, text: object, categories: object, metadata: object, observed_at: object, actor: object,
    reason: object, source_ids: object,
) -> None:
    """:meth:`remem.Memory.update`."""
    if text is not None:
        check_text(text, max_chars, "text")
    if categories is not None:
        check_categories(categories)  # type: ignore[arg-type]
    if metadata is not None:
        check_metadata(metadata)
    if observed_at is not None:
        check_datetime(observed_at, "observed_at")
    check_actor(actor)
    check_reason(reason)
    if source_ids is not None:
        if not isinstance(source_ids, (list, tuple)):
            raise fail("source_ids", f"must be a list of strings, got {type(source_ids).__name__}")
        if len(source_ids) > MAX_SOURCE_IDS:
            raise fail("source_ids", f"has {len(source_ids)} entries, more than the limit of {MAX_SOURCE_IDS}")
        for i, s in enumerate(source_ids):
            check_label(s, f"source_ids[{i}]")


def check_change_args(*, actor: object, reason: object) -> None:
    """:meth:`remem.Memory.delete` and :meth:`remem.Memory.restore`."""
    check_actor(actor)
    check_reason(reason)


def check_get_args(*, include_deleted: object) -> None:
    """:meth:`remem.Memory.get`."""
    check_bool(include_deleted, "include_deleted")


def check_import_args(path: object, *, overwrite: object, progress: object) -> Path:
    """:meth:`remem.Memory.import_`: the file path and the options."""
    check_bool(overwrite, "overwrite")
    check_progress(progress)
    return check_path(path)


def check_list_args(*, offset: object, limit: object, deleted: object, order: object, since: object,
                    until: object) -> None:
    """:meth:`remem.Memory.list`."""
    check_offset(offset)
    check_limit(limit)
    if deleted is not None:
        check_bool(deleted, "deleted")
    check_choice(order, "order", ("asc", "desc"))
    check_range(since, until)


#: The fields of :class:`remem.retrieval.SearchOptions` checked here (a duck-typed check: this module sits
#: below the retrieval package).
_OPTION_FIELDS = ("mode", "rrf_k", "weights", "expand_neighbors", "dedupe", "recency", "neighbour_smoothing",
                  "speaker_boost", "skip_covered", "session_diversity", "feedback_terms", "feedback_docs",
                  "feedback_depth", "recency_half_life_days", "time_expressions", "reference_time")


def _check_knobs(knobs: Mapping[str, Any]) -> None:
    """The search knobs present in ``knobs`` (explicit arguments or the fields of a SearchOptions)."""
    checks: dict[str, Callable[[Any, str], object]] = {
        "mode": lambda v, f: check_choice(v, f, ("hybrid", "dense", "bm25")),
        "time_expressions": lambda v, f: check_choice(v, f, ("boost", "filter", "off")),
        "rrf_k": lambda v, f: check_int(v, f, minimum=1, maximum=10_000),
        "weights": _check_weights,
        "expand_neighbors": lambda v, f: check_int(v, f, minimum=0, maximum=MAX_EXPAND),
        "dedupe": check_bool,
        "skip_covered": check_bool,
        "recency": lambda v, f: check_float(v, f, minimum=0.0, maximum=1000.0),
        "neighbour_smoothing": lambda v, f: check_float(v, f, minimum=0.0, maximum=1000.0),
        "speaker_boost": lambda v, f: check_float(v, f, minimum=0.0, maximum=1000.0),
        "session_diversity": lambda v, f: check_float(v, f, minimum=0.0, maximum=1.0),
        "feedback_terms": lambda v, f: check_int(v, f, minimum=0, maximum=100),
        "feedback_docs": lambda v, f: check_int(v, f, minimum=1, maximum=MAX_LIMIT),
        "feedback_depth": lambda v, f: v is None or check_int(v, f, minimum=1, maximum=MAX_LIMIT),
        "recency_half_life_days": lambda v, f: check_float(v, f, minimum=1e-6, maximum=1e6),
        "reference_time": lambda v, f: v is None or check_datetime(v, f),
    }
    for name, value in knobs.items():
        if name in checks:
            checks[name](value, name)


def _check_weights(weights: object, field: str) -> None:
    if not isinstance(weights, Mapping):
        raise fail(field, f"must be a dict of signal name -> weight, got {type(weights).__name__}")
    for name, weight in weights.items():
        check_label(name, f"{field} key", max_len=64)
        check_float(weight, f"{field}.{name}", minimum=0.0, maximum=1000.0)


def check_search_options(options: object) -> None:
    """Every knob of a :class:`remem.retrieval.SearchOptions` within its range (finite numbers)."""
    missing = [name for name in _OPTION_FIELDS if not hasattr(options, name)]
    if missing:
        raise fail("options", f"must be a remem.retrieval.SearchOptions, got {type(options).__name__}")
    _check_knobs({name: getattr(options, name) for name in _OPTION_FIELDS})


def check_search_args(
    *, limit: object, threshold: object, since: object, until: object, options: object = None, **knobs: object
) -> None:
    """:meth:`remem.Memory.search`: limit 1-1000, threshold a finite cosine in [-1, 1], the time range, the
    options object and the explicit knobs (``expand_neighbors`` 0-10, ``recency`` 0-1000, ``mode``,
    ``time_expressions``, ``dedupe``, ``reference_time``)."""
    check_limit(limit)
    if threshold is not None:
        check_float(threshold, "threshold", minimum=-1.0, maximum=1.0)
    check_range(since, until)
    if options is not None:
        check_search_options(options)
    _check_knobs({k: v for k, v in knobs.items() if v is not None})


def check_agent_args(*, window: object, core_limit: object, core_categories: object, max_tool_calls: object,
                     search_limit: object, background: object, instructions: object, retries: object) -> None:
    """:class:`remem.Agent`: its bounded knobs (window 1-1000 messages, at most 1000 core facts, 0-20 tool
    calls, search limit 1-1000, 0-10 retries)."""
    check_int(window, "window", minimum=1, maximum=1000)
    check_int(core_limit, "core_limit", minimum=1, maximum=MAX_LIMIT)
    check_categories(core_categories, "core_categories")  # type: ignore[arg-type]
    check_int(max_tool_calls, "max_tool_calls", minimum=0, maximum=20)
    check_limit(search_limit)
    check_bool(background, "background")
    if instructions is not None:
        check_str(instructions, "instructions", max_len=100_000)
    check_int(retries, "retries", minimum=0, maximum=10)


def check_reply_args(*, session_id: object, now: object) -> None:
    """:meth:`remem.Agent.reply` (besides the user id and the text)."""
    check_optional_label(session_id, "session_id")
    check_optional_datetime(now, "now")


def check_path(path: object, field: str = "path") -> Path:
    """A file path: ``str`` or ``os.PathLike``, no NUL, encodable for the file system, not a directory."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail(field, f"must be a file path, got {type(path).__name__}")
    try:
        raw = os.fsencode(path)
    except (UnicodeEncodeError, TypeError):
        raise fail(field, f"{shown(os.fspath(path))} cannot be encoded for the file system") from None
    if b"\x00" in raw or not raw:
        raise fail(field, f"{shown(os.fspath(path))} is not a usable file path")
    result = Path(os.fsdecode(raw))
    if result.is_dir():
        raise fail(field, f"{shown(str(result))} is a directory, not a file")
    return result


# -- import files --------------------------------------------------------------------------------------------
def _json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests deeper than ``limit`` (brackets inside strings are skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def import_line_limit(max_text_chars: int) -> int:
    """The longest import line accepted, in bytes: what an export can write for the longest memory allowed. An
    event line carries a text up to three times (old, new, snapshot); a character is at most 6 bytes in the
    export's JSON (``\\u001b``, UTF-8 is at most 4); plus 1 MiB for everything else (metadata is at most 16 KiB)."""
    return MAX_IMPORT_LINE_BYTES + 3 * 6 * max_text_chars


def check_import_line(raw: bytes, where: str, number: int, max_text_chars: int = 0) -> None:
    """One line of an import file: at most :func:`import_line_limit` bytes and nested at most 32 deep (before
    it is parsed)."""
    limit = import_line_limit(max_text_chars)
    if len(raw) > limit:
        raise ImportFormatError(f"{where}: the line has {len(raw)} bytes, more than the limit of {limit}",
                                line=number)
    if _json_depth_exceeds(raw, MAX_IMPORT_DEPTH):
        raise ImportFormatError(f"{where}: JSON nested more than {MAX_IMPORT_DEPTH} levels deep", line=number)


def check_event(event: HistoryEvent) -> HistoryEvent:
    """A history event of an import file: its texts and labels within the limits."""
    check_label(event.memory_id, "memory_id")
    check_label(event.actor, "actor")
    check_reason(event.reason)
    if event.id is not None:
        check_int(event.id, "id", minimum=0, maximum=INT64_MAX)
    return event
