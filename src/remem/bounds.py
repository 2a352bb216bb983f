"""The limits of every input, and the primitive checks that enforce them.

This is the lowest layer of input validation: it imports only :mod:`remem.errors`, so the pydantic models
(:mod:`remem.models`) can use these checks as field validators and :mod:`remem.validation` (the entry-point
checks, which build on the models) can use them too. Every check raises :class:`~remem.errors.ValidationError`
(a ``ValueError``, so inside a pydantic validator it becomes a pydantic error that the edges convert) with a
message that starts with the name of the offending field, and ``context["field"]`` set to that name.
Values are quoted with :func:`shown`: escaped and truncated, so an error message never carries a lone
surrogate, a control character or a whole 16,000-character text back to a terminal, a log or a JSON response.

The limits (also tabled in the README, "Input limits"):

- text of a memory, a query, a chat message: 1 to ``REMEM_MAX_TEXT_CHARS`` characters after stripping
  (default 1,000,000; the setting itself is bounded by :data:`MAX_TEXT_CHARS_LIMIT`); no NUL, no lone surrogate
  (anything ``str.encode("utf-8")`` refuses); other control characters are kept (escaped when shown);
- labels (speaker names, message/source ids, session ids, actors, API key labels): at most
  :data:`MAX_LABEL_CHARS` characters, no control characters (C0, DEL, C1), no lone surrogate;
- categories: at most :data:`MAX_CATEGORIES` per call, each a label of 1 to :data:`MAX_CATEGORY_CHARS`;
- reasons: at most :data:`MAX_REASON_CHARS` characters (newlines allowed), no NUL or lone surrogate;
- datetimes: naive ones are UTC; an aware one must have a UTC form Python can represent
  (``0001-01-01T00:00:00Z`` to ``9999-12-31T23:59:59.999999Z``), so ``0001-01-01T00:00:00+01:00`` is refused;
- metadata: a JSON object with string keys (1 to :data:`MAX_METADATA_KEY_CHARS` characters), values of JSON
  types only (no NaN or infinity, integers within signed 64 bits — what the stores keep exactly), nesting at
  most :data:`MAX_METADATA_DEPTH` deep, at most :data:`MAX_METADATA_ITEMS` entries per object or list, and at
  most :data:`MAX_METADATA_BYTES` bytes as UTF-8 JSON;
- numbers: integers are ``int`` (not ``bool``; anything with ``__index__`` such as numpy integers is
  accepted), floats are finite; each bounded where it is used (see :mod:`remem.validation`).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ValidationError

#: Upper bound of the REMEM_MAX_TEXT_CHARS setting (and of any text a model accepts).
MAX_TEXT_CHARS_LIMIT = 10_000_000
#: The default of ``REMEM_MAX_TEXT_CHARS``: a pasted document fits (longer than the embedder's window, it is
#: indexed in chunks: :mod:`remem.chunking`).
DEFAULT_MAX_TEXT_CHARS = 1_000_000
MAX_LABEL_CHARS = 200
MAX_CATEGORY_CHARS = 64
MAX_CATEGORIES = 32
MAX_REASON_CHARS = 500
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 8
MAX_METADATA_ITEMS = 256
MAX_METADATA_KEY_CHARS = 128
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, truncated: repr escapes every non-printable character (control characters, lone
    surrogates, bidi controls, line separators), so the result is one safe printable line."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__; the type is enough to name the value
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(field: str, problem: str, **context: Any) -> ValidationError:
    """The error for ``field``: the message reads ``"<field> <problem>"``."""
    return ValidationError(f"{field} {problem}", field=field, **context)


def bad_char(value: str) -> str | None:
    """What makes ``value`` unstorable, or None: a NUL character or a lone surrogate."""
    if "\x00" in value:
        return f"contains a NUL character (position {value.index(chr(0))})"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"contains a lone surrogate (U+{ord(value[exc.start]):04X} at position {exc.start}): "
                    "it is not valid Unicode and cannot be stored as UTF-8")
    return None


def check_str(
    value: object, field: str, *, max_len: int, min_len: int = 0, label: bool = False, strip: bool = False
) -> str:
    """A string of ``min_len`` to ``max_len`` characters without NUL or lone surrogates; ``label=True`` also
    refuses every control character (C0, DEL, C1). ``strip=True`` measures and returns the stripped text."""
    if not isinstance(value, str):
        raise fail(field, f"must be a string, got {type(value).__name__}")
    problem = bad_char(value)
    if problem is not None:
        raise fail(field, problem)
    if label and (m := _CONTROL.search(value)) is not None:
        raise fail(field, f"contains a control character ({shown(m.group())} at position {m.start()})")
    text = value.strip() if strip else value
    if len(text) < min_len:
        raise fail(field, "is empty" if min_len == 1 else f"is shorter than {min_len} characters")
    if len(text) > max_len:
        raise fail(field, f"has {len(text)} characters, more than the limit of {max_len}",
                   length=len(text), limit=max_len)
    return text


def check_label(value: object, field: str, *, max_len: int = MAX_LABEL_CHARS, min_len: int = 1) -> str:
    """A short name or id: 1 to ``max_len`` characters, no control characters, no lone surrogate."""
    return check_str(value, field, max_len=max_len, min_len=min_len, label=True)


def check_optional_label(value: object, field: str, *, max_len: int = MAX_LABEL_CHARS) -> str | None:
    return None if value is None else check_label(value, field, max_len=max_len)


def check_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """An integer in ``[minimum, maximum]`` (``bool`` is refused; numpy integers are accepted)."""
    if isinstance(value, (bool, float)):
        raise fail(field, f"must be an integer between {minimum} and {maximum}, got {shown(value)}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise fail(field, f"must be an integer between {minimum} and {maximum}, got {type(value).__name__}"
                   ) from None
    if not minimum <= number <= maximum:
        raise fail(field, f"must be an integer between {minimum} and {maximum}, got {shown(number, 30)}")
    return number


def check_float(value: object, field: str, *, minimum: float, maximum: float) -> float:
    """A finite number in ``[minimum, maximum]`` (``bool`` is refused; numpy numbers are accepted)."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or hasattr(value, "__index__")):
        raise fail(field, f"must be a number between {minimum:g} and {maximum:g}, got {type(value).__name__}")
    try:
        number = float(value if isinstance(value, (int, float)) else operator.index(value))
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise fail(field, f"must be a finite number between {minimum:g} and {maximum:g}, got {shown(value, 30)}")
    return number


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise fail(field, f"must be one of {', '.join(choices)}, got {shown(value, 30)}")
    return value


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise fail(field, f"must be true or false, got {shown(value, 30)}")
    return value


def _iso(value: datetime) -> str:
    try:
        return value.isoformat()
    except Exception:  # noqa: BLE001 - a hostile tzinfo; repr names the value well enough
        return shown(value)


def check_datetime(value: object, field: str) -> datetime:
    """``value`` as an aware UTC datetime; a naive value is UTC. Refused: non-datetimes, and aware values whose
    UTC form falls outside what a datetime can hold (years 1 to 9999), e.g. ``0001-01-01T00:00:00+01:00``."""
    if not isinstance(value, datetime):
        raise fail(field, f"must be a datetime, got {type(value).__name__}")
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ArithmeticError, ValueError, TypeError):
        raise fail(field, f"{_iso(value)} is out of range: in UTC it must lie between 0001-01-01T00:00:00Z and "
                   "9999-12-31T23:59:59.999999Z") from None


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def refuse_epoch(value: object, info: Any = None) -> object:
    """A pydantic ``BeforeValidator`` for datetimes given as text: pydantic would read a number (``1700000000``,
    ``"-14197"``) as Unix time; remem's API takes ISO 8601 only (``2024-05-08``, ``2024-05-08T14:30:00Z``)."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        field = getattr(info, "field_name", None) or "datetime"
        raise fail(field, f"must be an ISO 8601 date or time (e.g. 2024-05-08T14:30:00Z), got {shown(value, 30)}")
    return value


def check_optional_datetime(value: object, field: str) -> datetime | None:
    return None if value is None else check_datetime(value, field)


def _path(field: str, parts: tuple[str | int, ...]) -> str:
    """``metadata.key[2]`` (keys that are not plain names are quoted: ``metadata['a b']``)."""
    out = field
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}", part):
            out += f".{part}"
        else:
            out += f"[{shown(part)}]"
    return out


def _plain_key(key: object) -> bool:
    """The common case, checked without building messages: a short printable ASCII string."""
    return isinstance(key, str) and 0 < len(key) <= MAX_METADATA_KEY_CHARS and key.isascii() and key.isprintable()


def _check_json(value: object, field: str, parts: tuple[str | int, ...]) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise fail(_path(field, parts), f"is an integer outside the signed 64-bit range ({shown(value, 30)})")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise fail(_path(field, parts), f"is {value}: JSON has no NaN or infinity")
        return
    if isinstance(value, str):
        if not value.isascii() or "\x00" in value:
            problem = bad_char(value)
            if problem is not None:
                raise fail(_path(field, parts), problem)
        return
    if isinstance(value, (Mapping, list)):
        if len(parts) >= MAX_METADATA_DEPTH:
            raise fail(_path(field, parts), f"is nested more than {MAX_METADATA_DEPTH} levels deep")
        if len(value) > MAX_METADATA_ITEMS:
            raise fail(_path(field, parts), f"has {len(value)} entries, more than the limit of {MAX_METADATA_ITEMS}")
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check_json(item, field, (*parts, i))
            return
        for key, item in value.items():
            if not _plain_key(key):
                where = f"{_path(field, parts)} key {shown(key, 30)}"
                if not isinstance(key, str):
                    raise fail(where, f"must be a string, got {type(key).__name__}")
                check_label(key, where, max_len=MAX_METADATA_KEY_CHARS)
            _check_json(item, field, (*parts, key))
        return
    raise fail(_path(field, parts), f"has a value of type {type(value).__name__}: use JSON types (null, "
               "true/false, numbers, strings, lists, objects)")


def check_metadata(value: object, field: str = "metadata", *, max_bytes: int | None = MAX_METADATA_BYTES
                   ) -> dict[str, Any]:
    """A JSON object within the metadata limits (see the module docstring); ``max_bytes=None`` skips the size
    bound (records read back from a store are checked for storability, not size)."""
    if not isinstance(value, dict):
        raise fail(field, f"must be a JSON object (a dict), got {type(value).__name__}")
    if len(value) > MAX_METADATA_ITEMS:
        raise fail(field, f"has {len(value)} entries, more than the limit of {MAX_METADATA_ITEMS}")
    for key, item in value.items():
        if not _plain_key(key):
            where = f"{field} key {shown(key, 30)}"
            if not isinstance(key, str):
                raise fail(where, f"must be a string, got {type(key).__name__}")
            check_label(key, where, max_len=MAX_METADATA_KEY_CHARS)
        _check_json(item, field, (key,))
    if max_bytes is not None:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        if size > max_bytes:
            raise fail(field, f"is {size} bytes as JSON, more than the limit of {max_bytes}", size=size,
                       limit=max_bytes)
    return dict(value)
