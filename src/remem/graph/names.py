"""Names: the canonical form of an entity name, the key exact matching uses, relation names, and the sentence a
relation reads as. Pure functions, no I/O.

- :func:`canonical_name` drops a leading possessive or determiner phrase before a proper name ("my sister
  Maya" → "Maya", "the Eiffel Tower" → "Eiffel Tower") and returns what it dropped as a hint ("my sister"); a
  name with no capitalised word ("my sister") is kept whole.
- :func:`name_key` is what two spellings must share to be the same name: case-, accent-, punctuation- and
  whitespace-insensitive ("Maya", "maya", "MAYA!" → ``maya``).
- :func:`relation_name` turns what a model or a host wrote ("Lives in", "works-at") into snake_case
  (``lives_in``, ``works_at``); anything else is a :class:`~remem.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo

from ..errors import ValidationError
from .models import RELATION_NAME, Entity, EntityType, Relation

_DETERMINERS = frozenset(["my", "our", "his", "her", "their", "your", "the", "a", "an", "its"])
_POSSESSIVE = re.compile(r"^\S+['’]s$")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
MAX_NAME = 200


def clean(text: str) -> str:
    return " ".join(text.split()).strip(" \t\"'“”‘’,;:!?")


def canonical_name(name: str) -> tuple[str, str | None]:
    """``(name, dropped phrase)``: "my sister Maya" → ("Maya", "my sister"); "Maya" → ("Maya", None)."""
    text = clean(name)
    tokens = text.split(" ")
    first = tokens[0].casefold() if tokens else ""
    if len(tokens) < 2 or not (first in _DETERMINERS or _POSSESSIVE.match(tokens[0])):
        return text, None
    for i, token in enumerate(tokens[1:], start=1):
        if token[:1].isupper() or token[:1].isdigit():
            return " ".join(tokens[i:]), " ".join(tokens[:i])
    return text, None


def name_key(name: str) -> str:
    """The exact-match key of a name (see the module docstring)."""
    decomposed = unicodedata.normalize("NFKD", canonical_name(name)[0])
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_PUNCT.sub(" ", bare.casefold()).split())


def check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not clean(value):
        raise ValidationError(f"{field} must be a non-empty name", field=field)
    text = clean(value)
    if len(text) > MAX_NAME:
        raise ValidationError(f"{field} is longer than {MAX_NAME} characters", field=field)
    if "\x00" in text:
        raise ValidationError(f"{field} contains a NUL character", field=field)
    return text


def relation_name(value: object, field: str = "relation") -> str:
    """snake_case relation name, e.g. "Lives in" → ``lives_in`` (ValidationError naming ``field`` otherwise)."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    snake = re.sub(r"[\s\-]+", "_", value.strip().casefold())
    snake = re.sub(r"_+", "_", snake).strip("_")
    if not RELATION_NAME.match(snake):
        raise ValidationError(
            f"{field} {value!r} is not a short snake_case verb (e.g. lives_in, sister_of, works_at)", field=field)
    return snake


def entity_type(value: object, default: EntityType = "thing") -> EntityType:
    """A model's type word → one of the five types ("organization", "company" → organisation; unknown → default)."""
    if not isinstance(value, str):
        return default
    word = value.strip().casefold()
    aliases: dict[str, EntityType] = {
        "person": "person", "people": "person", "human": "person", "pet": "thing",
        "place": "place", "location": "place", "city": "place", "country": "place",
        "organisation": "organisation", "organization": "organisation", "org": "organisation",
        "company": "organisation", "school": "organisation",
        "thing": "thing", "object": "thing", "concept": "thing", "activity": "thing",
        "event": "event",
    }
    return aliases.get(word, default)


def day(value: datetime, tz: tzinfo | None = None) -> str:
    """``YYYY-MM-DD`` of an instant (on ``tz``'s calendar, default UTC)."""
    return (value.astimezone(tz) if tz is not None else value).date().isoformat()


def sentence(relation: Relation, subject: Entity, obj: Entity, tz: tzinfo | None = None) -> str:
    """"Maya lives in Lisbon (since 2024-03-01)", "Alice lives in Berlin (until 2024-03-01)", dated on ``tz``'s
    calendar (default UTC); a deleted relation says so."""
    words = relation.relation.replace("_", " ")
    if relation.relation.endswith("_of") and relation.relation.count("_") <= 2 and \
            not relation.relation.startswith(("is_", "was_")):
        words = "is " + words  # sister_of → "is sister of"
    text = f"{subject.name} {words} {obj.name}"
    start = day(relation.valid_from, tz) if relation.valid_from else None
    end = day(relation.valid_to, tz) if relation.valid_to else None
    if start and end:
        text += f" (from {start} until {end})"
    elif start:
        text += f" (since {start})"
    elif end:
        text += f" (until {end})"
    elif relation.expired_at is not None:
        text += f" (no longer true as of {day(relation.expired_at, tz)})"
    if relation.deleted_at is not None:
        text += " [deleted]"
    return text
