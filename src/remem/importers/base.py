"""What every importer shares: the field types of the format models, the summary, ids, and the write.

An importer (``chatgpt``, ``claude``, ``mem0``) turns a parsed JSON document (read by :mod:`.jsonfile`) into a
:class:`Parsed`: the records to store plus the items it left out and why. It validates the whole document
first (pydantic models of the format whose fields carry remem's input bounds — :data:`Label`, :data:`Text`,
:data:`Seconds`, :data:`When`; any error names its JSON path, e.g. ``$[3].mapping["a1"].message.author.role``)
and raises :class:`~remem.errors.ImportFormatError` before anything is written; :func:`build_record` turns any
value the memory model still refuses into the same error at the item's path.

:func:`write` then stores the records through :meth:`remem.Memory.add_records`:

* **Ids are deterministic** (``uuid5`` of user, format, conversation and message id), so running the same
  import again finds every record already there and skips it ("already imported"), per user: the same file
  imported for two users gives each their own copy.
* Chat messages are episodes written with ``dedupe=False`` (a conversation keeps every "thanks"); Mem0 memories
  are facts written with remem's exact-duplicate check (a text the user already has is a NOOP, reported as
  "same text as an existing memory").
* ``add_records`` commits in batches of 256; each batch is atomic (history events and store points together).
  If a write fails midway (disk full, store error) the batches before it stay, and the error propagates;
  running the same import again skips what was written and writes the rest.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationInfo,
    computed_field,
)
from pydantic import ValidationError as PydanticValidationError

from ..bounds import bad_char, check_datetime, check_label, refuse_epoch
from ..errors import ImportFormatError, NotFoundError, ValidationError
from ..memory.core import Memory
from ..models import EventType, MemoryRecord

Progress = Callable[[int, int], None]
M = TypeVar("M", bound=BaseModel)
#: uuid5 namespace of imported memory ids (fixed: re-imports must find the same ids).
IMPORT_NAMESPACE = uuid.UUID("0b7c2d4e-9a51-5f63-8e1d-2c4b6a8f0e13")


class Skipped(BaseModel):
    """One item of the file that was not stored: where it is (JSON path) and why."""

    where: str
    reason: str


class ImportSummary(BaseModel):
    """What an import did. ``imported`` counts memories written; every other item is in ``skipped``."""

    source: str
    path: str
    users: list[str] = Field(default_factory=list)
    conversations: int = 0
    imported: int = 0
    skipped: list[Skipped] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Reason -> count, most frequent first."""
        return dict(Counter(s.reason for s in self.skipped).most_common())


class Parsed(BaseModel):
    """An importer's output: records to write (with the JSON path of each) and what it left out."""

    records: list[MemoryRecord] = Field(default_factory=list)
    where: list[str] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    conversations: int = 0


def json_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a JSON path: ``(3, "mapping", "a1")`` -> ``$[3].mapping["a1"]``."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def validate_list(path: Path, data: Any, model: type[M], what: str, prefix: Sequence[int | str] = ()) -> list[M]:
    """``data`` as a list of ``model``; else ``ImportFormatError`` naming the JSON path of the first error."""
    if not isinstance(data, list):
        where = json_path(prefix)
        raise ImportFormatError(f"{path}: {where}: expected a list, got {type(data).__name__} — not a {what}",
                                path=str(path), position=where)
    try:
        return TypeAdapter(list[model]).validate_python(data)  # type: ignore[valid-type]
    except PydanticValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = json_path([*prefix, *first["loc"]])
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise ImportFormatError(f"{path}: {where}: {first['msg']} — not a {what}{more}", path=str(path),
                                position=where) from None


def fail(path: Path, loc: Sequence[int | str], message: str) -> ImportFormatError:
    """An ``ImportFormatError`` for a rule pydantic does not check (a user id, a category)."""
    where = json_path(loc)
    return ImportFormatError(f"{path}: {where}: {message}", path=str(path), position=where)


def record_id(user_id: str, source: str, *parts: str) -> str:
    """The deterministic id of an imported memory (same user, format and ids -> same memory id)."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, json.dumps([user_id, source, *parts])))


def from_timestamp(seconds: float | None) -> datetime | None:
    """Unix seconds as a UTC datetime (the value passed :data:`Seconds`, so it is in range)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


# -- field types of the format models: remem's input bounds, checked where pydantic knows the JSON path -------
def _field(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _label(value: str, info: ValidationInfo) -> str:
    return check_label(value, _field(info))


def _storable(value: Any, info: ValidationInfo) -> Any:
    """A string must be storable (no NUL, no lone surrogate); other values pass."""
    if isinstance(value, str) and (problem := bad_char(value)) is not None:
        raise ValidationError(f"{_field(info)} {problem}")
    return value


def _seconds(value: float | None, info: ValidationInfo) -> float | None:
    if value is None:
        return None
    try:
        if math.isfinite(value):
            datetime.fromtimestamp(value, UTC)
            return value
    except (OverflowError, ValueError, OSError):
        pass
    raise ValidationError(f"{_field(info)} {value!r} is not a time: seconds since 1970-01-01 within the years "
                          "1 to 9999")


def _iso(value: Any, info: ValidationInfo) -> Any:
    return refuse_epoch(value, info)


def _aware(value: datetime | None, info: ValidationInfo) -> datetime | None:
    return None if value is None else check_datetime(value, _field(info))


#: An id or name that becomes a label of a memory (source id, session id, speaker, user): remem's label rules.
Label = Annotated[str, AfterValidator(_label)]
#: Text that is stored (a message, a title): no NUL, no lone surrogate (its length is the importer's call).
Text = Annotated[str, AfterValidator(_storable)]
#: Any JSON value whose strings, when it is one, must be storable (a message part).
Part = Annotated[Any, AfterValidator(_storable)]
#: Unix seconds a datetime can hold (finite, years 1 to 9999): ``1e20``, ``-1e12`` and ``NaN`` are refused.
Seconds = Annotated[float | None, AfterValidator(_seconds)]
#: An ISO 8601 time (not a number) with a UTC form a datetime can hold.
When = Annotated[datetime | None, BeforeValidator(_iso), AfterValidator(_aware)]


def build_record(path: Path, loc: Sequence[int | str], **fields: Any) -> MemoryRecord:
    """``MemoryRecord(**fields)``; a value it refuses is an ``ImportFormatError`` at ``loc`` (the safety net
    behind the format models' checks: every malformed input names its position)."""
    try:
        return MemoryRecord(**fields)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in first["loc"])
        raise fail(path, loc, f"{field}: {message}" if field else message) from None
    except ValidationError as exc:
        raise fail(path, loc, exc.message) from None


def write(memory: Memory, parsed: Parsed, summary: ImportSummary, *, dedupe: bool,
          progress: Progress | None = None) -> ImportSummary:
    """Store the parsed records (skipping those a previous run stored) and fill in the summary."""
    todo: list[MemoryRecord] = []
    todo_where: list[str] = []
    for record, where in zip(parsed.records, parsed.where, strict=True):
        try:
            memory.get(record.id, user_id=record.user_id, include_deleted=True)
        except NotFoundError:
            todo.append(record)
            todo_where.append(where)
            continue
        summary.skipped.append(Skipped(where=where, reason="already imported"))
    result = memory.add_records(todo, actor=f"import:{summary.source}", dedupe=dedupe, progress=progress)
    for event, where in zip(result.events, todo_where, strict=True):
        if event.event is EventType.ADD:
            summary.imported += 1
        else:
            summary.skipped.append(Skipped(where=where, reason="same text as an existing memory"))
    summary.skipped = [*parsed.skipped, *summary.skipped]
    summary.users = sorted({r.user_id for r in parsed.records})
    summary.conversations = parsed.conversations
    return summary
