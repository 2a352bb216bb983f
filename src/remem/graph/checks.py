"""Input checks of the graph's public methods: every argument a caller gives, checked before anything is read or
written, each failure a :class:`~remem.errors.ValidationError` naming the field (``subject.hint``,
``triplet 2 source_ids[0]``, ``since``).

The limits (README, "Graph memory"): entity names and hints are labels of at most 200 characters (white space
collapsed; no control character, NUL or lone surrogate); relation names snake_case of at most 64 characters;
at most :data:`~remem.graph.models.MAX_SOURCE_IDS` source ids per triplet, each a label of at most 200; a
``fact`` of at most 2,000 characters; datetimes whose UTC form exists (years 1-9999); ``since`` not after
``until``; ``hops`` an integer from 1 to 3 (not a bool).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError as PydanticValidationError

from ..bounds import check_label, check_metadata, check_optional_datetime, check_str, fail, shown
from ..errors import ValidationError
from .models import MAX_FACT_CHARS, MAX_SOURCE_IDS, EntityRef, Triplet
from .names import check_hint, check_name, relation_name
from .retrieval import MAX_HOPS, TimeFilter

#: Longest entity or relation id accepted (ids are UUIDs; a longer value cannot be one).
MAX_ID = 64


def model_error(exc: PydanticValidationError, where: str) -> ValidationError:
    """The first error of a pydantic model built from caller input, as a ValidationError naming the field
    (``where`` + the error's location, e.g. ``subject.hint``)."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    field = ".".join(p for p in (where, loc) if p) or "input"
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValidationError):  # one of remem's checks, run as a validator: keep its words
        leaf = str(cause.context.get("field", ""))
        text = cause.message[len(leaf):].lstrip() if leaf and cause.message.startswith(leaf) else cause.message
        return fail(field, text)
    return fail(field, f"is invalid: {first.get('msg', 'invalid')}")


def check_id(value: object, field: str = "id") -> str:
    """An entity or relation id as given to a read or write (lower-cased; at most 64 characters, a label)."""
    return check_label(value, field, max_len=MAX_ID).strip().lower()


def check_ref(value: object, field: str) -> EntityRef:
    """A name, an :class:`EntityRef` or a dict → a checked EntityRef (name cleaned, hint cleaned or None)."""
    if isinstance(value, str):
        return EntityRef(name=check_name(value, f"{field}.name"))
    if isinstance(value, dict):
        try:
            value = EntityRef.model_validate(value)
        except PydanticValidationError as exc:
            raise model_error(exc, field) from None
    if not isinstance(value, EntityRef):
        raise fail(field, f"must be a name, an EntityRef or a dict, got {type(value).__name__}")
    if value.id is not None:
        return value.model_copy(update={"id": check_id(value.id, f"{field}.id")})
    if value.name is None:
        raise fail(field, "needs a name or an id")
    return value.model_copy(update={"name": check_name(value.name, f"{field}.name"),
                                    "hint": check_hint(value.hint, f"{field}.hint")})


def check_sources(values: object, field: str = "source_ids") -> list[str]:
    """At most :data:`MAX_SOURCE_IDS` source ids, each a label (no control character, at most 200 characters);
    blank ones are dropped, duplicates kept once, order kept."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise fail(field, f"must be a list of strings, got {type(values).__name__}")
    if len(values) > MAX_SOURCE_IDS:
        raise fail(field, f"has {len(values)} entries, more than the limit of {MAX_SOURCE_IDS}")
    out = [check_label(s, f"{field}[{i}]", min_len=0) for i, s in enumerate(values)]
    return list(dict.fromkeys(s for s in out if s.strip()))


def check_fact(value: object) -> str | None:
    return None if value is None else check_str(value, "fact", max_len=MAX_FACT_CHARS)


def check_triplet(t: object, index: int) -> Triplet:
    """One triplet of ``add_many``, re-checked field by field (``model_construct`` or assignment may have skipped
    the model's validators); returns it with a snake_case relation, checked refs and sources."""
    where = f"triplet {index}"
    if not isinstance(t, Triplet):
        raise fail(where, f"is a {type(t).__name__}, not a Triplet")
    times = {name: check_optional_datetime(getattr(t, name), f"{where} {name}")
             for name in ("valid_from", "valid_to", "observed_at")}
    if times["valid_from"] is not None and times["valid_to"] is not None and times["valid_to"] < times["valid_from"]:
        raise fail(f"{where} valid_to", "is before valid_from")
    check_metadata(t.metadata, f"{where} metadata")
    return t.model_copy(update={
        "relation": relation_name(t.relation, f"{where} relation"), "source_ids": check_sources(
            t.source_ids, f"{where} source_ids"), "fact": check_fact(t.fact), **times,
        "subject": check_ref(t.subject, f"{where} subject"), "object": check_ref(t.object, f"{where} object")})


def check_hops(hops: object) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
        raise fail("hops", f"must be an integer from 1 to {MAX_HOPS}, got {shown(hops, 30)}")
    return hops


def check_when(as_of: object, since: object, until: object) -> TimeFilter:
    """``as_of`` (what held then), or ``since``/``until`` (what held during the range): checked datetimes (naive =
    UTC) as a :class:`TimeFilter`; ``since`` after ``until``, or ``as_of`` with either, is refused."""
    at, start, end = (check_optional_datetime(v, f) for v, f in ((as_of, "as_of"), (since, "since"), (until, "until")))
    if at is not None and (start is not None or end is not None):
        raise fail("as_of", "and since/until exclude each other: give as_of or since/until, not both")
    if start is not None and end is not None and start > end:
        raise fail("since", f"({start.isoformat()}) is after until ({end.isoformat()})")
    return TimeFilter(as_of=at, since=start, until=end)

