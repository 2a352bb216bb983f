"""Input checks shared by every entry point. Each raises a :class:`~remem.errors.ValidationError` subclass
*before* anything is written, so a rejected call leaves no trace."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .errors import InvalidUserIdError, ValidationError
from .models import Message

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+\-]{0,127}$")


def check_user_id(user_id: object) -> str:
    """User ids: 1-128 chars, letters/digits first, then ``_ . @ : + -``. They are set by the host application."""
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):  # fullmatch: "$" lets "a\n" through
        raise InvalidUserIdError(
            f"invalid user id {user_id!r}: use 1-128 characters from A-Z a-z 0-9 _ . @ : + - "
            "(starting with a letter or digit)",
            user_id=repr(user_id),
        )
    return user_id


def check_text(text: object, max_chars: int, what: str = "memory text") -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be a string, got {type(text).__name__}")
    if "\x00" in text:
        raise ValidationError(f"{what} contains a NUL character")
    stripped = text.strip()
    if not stripped:
        raise ValidationError(f"{what} is empty")
    if len(stripped) > max_chars:
        raise ValidationError(
            f"{what} has {len(stripped)} characters, more than the limit of {max_chars} (REMEM_MAX_TEXT_CHARS)",
            length=len(stripped),
            limit=max_chars,
        )
    return stripped


def check_metadata(metadata: object) -> dict[str, Any]:
    """A JSON object of metadata (a copy); ``None`` is an empty one."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError("metadata must be a JSON object")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata is not JSON-serialisable: {exc}") from exc
    return dict(metadata)


def check_categories(categories: Sequence[str] | None) -> list[str]:
    if categories is None:
        return []
    if isinstance(categories, str):
        categories = [categories]
    out: list[str] = []
    for c in categories:
        if not isinstance(c, str) or not c.strip() or len(c) > 64:
            raise ValidationError(f"invalid category {c!r}: a non-empty string of at most 64 characters")
        name = c.strip().lower()
        if name not in out:
            out.append(name)
    return out


KINDS = ("episode", "fact")


def check_kinds(kinds: Sequence[str] | None) -> list[str] | None:
    """A list of memory kinds (``episode``/``fact``); a bare string is refused (it would match letters)."""
    if kinds is None:
        return None
    if isinstance(kinds, str) or not all(isinstance(k, str) and k in KINDS for k in kinds):
        raise ValidationError(f"kinds must be a list of {', '.join(KINDS)}, got {kinds!r}")
    return list(kinds)


def check_limit(limit: int, maximum: int = 1000) -> int:
    if not isinstance(limit, int) or limit < 1 or limit > maximum:
        raise ValidationError(f"limit must be an integer between 1 and {maximum}, got {limit!r}")
    return limit


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None:
        from .models import as_utc

        if as_utc(since) > as_utc(until):
            raise ValidationError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")


MessagesInput = str | Message | Mapping[str, Any] | Sequence[str | Message | Mapping[str, Any]]


def to_messages(messages: MessagesInput) -> list[Message]:
    """Normalise what callers pass to ``add``: a string, a Message, a dict, or a list of those."""
    items: Sequence[Any]
    if isinstance(messages, (str, Message, Mapping)):
        items = [messages]
    else:
        items = list(messages)
    if not items:
        raise ValidationError("no messages given")
    out: list[Message] = []
    for i, item in enumerate(items):
        if isinstance(item, Message):
            out.append(item)
        elif isinstance(item, str):
            out.append(Message(role="user", content=item))
        elif isinstance(item, Mapping):
            try:
                out.append(Message.model_validate(dict(item)))
            except PydanticValidationError as exc:
                raise ValidationError(f"message {i} is invalid: {exc.errors()[0]['msg']}", index=i) from exc
        else:
            raise ValidationError(f"message {i} has unsupported type {type(item).__name__}", index=i)
    return out
