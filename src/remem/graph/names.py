"""Names: the canonical form of an entity name, the key exact matching uses, relation names, and the sentence a
relation reads as. Pure functions, no I/O.

- :func:`canonical_name` drops a leading possessive or determiner phrase before a proper name ("my sister
  Maya" → "Maya", "the Eiffel Tower" → "Eiffel Tower") and returns what it dropped as a hint ("my sister"); a
  name with no capitalised word ("my sister") is kept whole.
- :func:`name_key` is what two spellings must share to be the same name: case-, accent-, punctuation- and
  whitespace-insensitive ("Maya", "maya", "MAYA!" → ``maya``).
- :func:`relation_name` turns what a model or a host wrote ("Lives in", "works-at") into snake_case
  (``lives_in``, ``works_at``, at most :data:`MAX_RELATION` characters); anything else is a
  :class:`~remem.errors.ValidationError` naming the field.
- :func:`identifiers` are the tokens of a name that pick one of a series ("Room **101**", "Gate **A1**",
  "**2024** Berlin Marathon", "Rocky **II**"): two names whose identifiers differ are never one entity by
  embedding similarity (:mod:`remem.graph.resolve`).
- :func:`labels` are how entities are shown: the name, and a disambiguator (the hint, else the type, else a short
  id) when another entity of the user has the same name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from functools import lru_cache

from ..bounds import MAX_LABEL_CHARS, check_label, check_str, fail, shown
from .models import RELATION_NAME, Entity, EntityType, Relation

_DETERMINERS = frozenset(["my", "our", "his", "her", "their", "your", "the", "a", "an", "its"])
_POSSESSIVE = re.compile(r"^\S+['’]s$")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
#: Longest entity name and hint (characters), and longest relation name.
MAX_NAME = MAX_LABEL_CHARS
MAX_HINT = MAX_LABEL_CHARS
MAX_RELATION = 64
#: An upper-case Roman numeral of two or more letters (II, IV, XIV; not CIVIL).
_ROMAN = re.compile(r"^(?=[IVXLC]{2,}$)C{0,3}(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")


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


@lru_cache(maxsize=65536)
def name_key(name: str) -> str:
    """The exact-match key of a name (see the module docstring)."""
    decomposed = unicodedata.normalize("NFKD", canonical_name(name)[0])
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_PUNCT.sub(" ", bare.casefold()).split())


def check_name(value: object, field: str) -> str:
    """An entity name: 1 to :data:`MAX_NAME` characters once runs of white space are collapsed and outer spaces and
    quotes stripped, then a label (:func:`remem.bounds.check_label`: no control character, NUL or lone surrogate);
    returns it cleaned."""
    value = check_str(value, field, max_len=10 * MAX_NAME)  # the type, NUL/surrogates, a rough length first
    text = clean(value)
    if not text:
        raise fail(field, "must be a non-empty name")
    return check_label(text, field, max_len=MAX_NAME)


def check_hint(value: object, field: str) -> str | None:
    """An entity hint ("Alice's sister"): None, or a label of at most :data:`MAX_HINT` characters (blank → None)."""
    if value is None:
        return None
    value = check_str(value, field, max_len=10 * MAX_HINT)
    text = " ".join(value.split())
    return check_label(text, field, max_len=MAX_HINT) if text else None


def relation_name(value: object, field: str = "relation") -> str:
    """snake_case relation name, e.g. "Lives in" → ``lives_in`` (ValidationError naming ``field`` otherwise)."""
    if not isinstance(value, str):
        raise fail(field, f"must be a string, got {type(value).__name__}")
    if len(value) > 4 * MAX_RELATION:
        raise fail(field, f"has {len(value)} characters, more than the limit of {MAX_RELATION}")
    snake = re.sub(r"[\s\-]+", "_", value.strip().casefold())
    snake = re.sub(r"_+", "_", snake).strip("_")
    if len(snake) > MAX_RELATION:
        raise fail(field, f"has {len(snake)} characters, more than the limit of {MAX_RELATION}")
    if not RELATION_NAME.match(snake):
        raise fail(field, f"{shown(value)} is not a short snake_case verb (e.g. lives_in, sister_of, works_at)")
    return snake


@lru_cache(maxsize=65536)
def identifiers(name: str) -> frozenset[str]:
    """The identifier tokens of a name: tokens with a digit ("101", "a1", "jam2"; "T2-7" gives "t2" and "7"), single
    letters ("Gate A" → "a"), and upper-case Roman numerals of two letters or more ("Rocky II" → "ii"), in
    :func:`name_key` form."""
    text = canonical_name(name)[0]
    out = {t for t in name_key(text).split(" ") if t and (len(t) == 1 or any(c.isdigit() for c in t))}
    out.update(t.casefold() for t in re.split(r"[^\w]+", text) if _ROMAN.match(t))
    return frozenset(out)


def labels(entities: Iterable[Entity], namesakes: Iterable[Entity] = ()) -> dict[str, str]:
    """Entity id → how it is shown. The name alone, unless another entity (of ``entities`` or ``namesakes``, the
    user's entities with the same names) has the same :func:`name_key`: then "Maya (Alice's sister)" — the hint,
    else the type ("Paris (place)"), else the first 8 characters of the id ("Maya (#1a2b3c4d)"), whichever tells
    it apart from its namesakes."""
    shown_ = {e.id: e for e in entities}
    groups: dict[str, dict[str, Entity]] = {}
    for e in [*shown_.values(), *namesakes]:
        groups.setdefault(name_key(e.name), {})[e.id] = e
    out: dict[str, str] = {}
    for e in shown_.values():
        group = list(groups[name_key(e.name)].values())
        out[e.id] = e.name
        if len(group) < 2:
            continue
        options: list[list[str | None]] = [[x.hint for x in group], [x.type for x in group],
                                           ["#" + x.id[:8] for x in group]]
        for tags in options:
            mine = tags[[x.id for x in group].index(e.id)]
            if mine and tags.count(mine) == 1:
                out[e.id] = f"{e.name} ({mine})"
                break
    return out


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


def sentence(relation: Relation, subject: Entity, obj: Entity, tz: tzinfo | None = None,
             names: Mapping[str, str] | None = None) -> str:
    """"Maya lives in Lisbon (since 2024-03-01)", "Alice lives in Berlin (until 2024-03-01)", dated on ``tz``'s
    calendar (default UTC); a deleted relation says so. ``names``: entity id → label (:func:`labels`), for
    entities that share a name."""
    words = relation.relation.replace("_", " ")
    if relation.relation.endswith("_of") and relation.relation.count("_") <= 2 and \
            not relation.relation.startswith(("is_", "was_")):
        words = "is " + words  # sister_of → "is sister of"
    names = names or {}
    text = f"{names.get(subject.id, subject.name)} {words} {names.get(obj.id, obj.name)}"
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
