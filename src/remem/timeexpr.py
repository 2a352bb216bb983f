"""Dates and time expressions, resolved on the calendar of the reference time's own time zone.

One rule-based grammar, read two ways:

- :func:`parse_time_range` — the expression in a *query* → the inclusive range of instants it names ("what
  did I do last week?" → Monday 00:00 to Sunday 23:59:59.999999 of the previous calendar week). Search uses it
  (``time_expressions="boost"``/``"filter"``) against ``reference_time``.
- :func:`resolve_relative` — the relative expression in a *message* → the one day a fact means by it
  ("yesterday" → the day before; "last week" → 7 days before; "last Friday" → that Friday). The pipeline's
  fallback when the LM gives no date for a fact, anchored at the message's timestamp.

Plus :func:`parse_date` (an ISO date or time → an aware datetime; a bare date is a local day), :func:`zone`
(an IANA name → ``ZoneInfo``, a typed error otherwise), :func:`reference_time` and :func:`stamp` (how the LM
is shown a time).

**Calendar and zones.** An expression is counted on the calendar of the reference time's tzinfo:
"yesterday" asked at 2024-07-25T08:00+09:00 is 24 July in that zone (2024-07-23T15:00Z …
2024-07-24T14:59:59.999999Z), not the UTC date. A naive reference time is UTC. Day bounds are built per day
in that tzinfo, so with a ``zoneinfo.ZoneInfo`` each bound carries the offset in force on its own day (a week
across a DST change is right; a DST day lasts 23 or 25 hours); a fixed offset (what an ISO string such as
``+02:00`` gives) stays fixed all year. Results are aware datetimes in the reference's tzinfo: they are
instants, and stores compare them as instants (UTC).

**Grammar** (deliberately small; every rule tested; anything else → ``None``, because a wrong range is worse
than none). ``fact day`` is what :func:`resolve_relative` takes from it; ``-`` = no single day (the fact keeps
its message's time):

=================================================  ==========================================  ================
expression                                         query range                                 fact day
=================================================  ==========================================  ================
``today``, ``tonight``, ``this morning/…evening``  today                                       today
``yesterday``, ``(the) day before yesterday``      that day                                    that day
``last night``                                     yesterday                                   yesterday
``tomorrow``, ``(the) day after tomorrow``         that day                                    that day
``N days ago`` (digits, words ≤ twelve, ``a``,     that day                                    that day
``a couple of``, ``a few``)
``N weeks ago``                                    the 7 days centred on today − 7N            today − 7N
``N months ago`` / ``N years ago``                 that calendar month / year                  same day N months/years back
``last/previous week|month|year``                  the previous calendar week (Mon–Sun) …      today − 7 days / 1 month / 1 year
``this/next week|month|year``                      that calendar period                        -
``last/this/next weekend``                         that Saturday–Sunday ("last": the latest    -
                                                   one that is over)
``(in) the past/last N units``, ``the past week``  N units back up to today                    -
``recently``                                       the past 30 days                            -
``last/this past Monday`` …                        the latest such day before today            that day
``on Monday`` …                                    the latest such day before today            - (may be ahead)
``in/during May`` (no year)                        the latest May not after today              -
``last May``                                       the latest May before this month            -
``May 2023``, ``in 2023``                          that month / year                           -
``on 8 May 2023``, ``May 8, 2023``, ``2023-05-08``  that day                                    -
``8 May``, ``May 8`` (no year)                     the latest such day not after today         -
=================================================  ==========================================  ================

The first rule of this table's order that matches wins (explicit dates first); an invalid day ("31 February
2023") falls through to the next rule ("February 2023").
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "couple of": 2, "few": 3}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY_RE = "|".join(WEEKDAYS)
_NUM_RE = r"\d{1,3}|" + "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True))
_UNIT_RE = r"days?|weeks?|months?|years?"


# -- zones and instants ----------------------------------------------------------------------------------------
def zone(name: str, field: str = "timezone") -> tzinfo:
    """An IANA time-zone name (``"Europe/Berlin"``, ``"Asia/Tokyo"``, ``"UTC"``) → its ``ZoneInfo``.

    Raises :class:`~remem.errors.ValidationError` naming ``field`` for anything else (unknown names, paths,
    non-strings). Names are case-sensitive, as in the tz database.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{field} must be an IANA time-zone name such as Europe/Berlin", field=field)
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(f"{field}: unknown time zone {name!r} (use an IANA name such as Europe/Berlin)",
                              field=field) from None


def aware(value: datetime, tz: tzinfo = UTC) -> datetime:
    """``value`` unchanged if it is aware; a naive one is read as wall time in ``tz`` (default UTC)."""
    return value if value.utcoffset() is not None else value.replace(tzinfo=tz)


def reference_time(at: datetime | None = None, timezone: str | None = None) -> datetime:
    """The moment relative expressions are counted from, in the zone they are counted in.

    ``at`` (default: now) expressed in the IANA zone ``timezone`` when one is given (a naive ``at`` is then
    wall time in that zone), else ``at`` as given (naive = UTC; now = UTC now). This is what the REST and CLI
    edges turn ``reference_time``/``timezone`` (``--at``/``--tz``) into. Raises ``ValidationError`` for an
    unknown zone.
    """
    tz = zone(timezone) if timezone is not None else None
    if at is None:
        return datetime.now(tz or UTC)
    at = aware(at, tz or UTC)
    return at.astimezone(tz) if tz is not None else at


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` on ``tz``'s calendar (local midnight; the first existing instant if a DST
    gap swallows midnight), as an aware datetime in ``tz``."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC).astimezone(tz)


def day_end(day: date, tz: tzinfo) -> datetime:
    """The last microsecond of ``day`` on ``tz``'s calendar (inclusive bound), as an aware datetime in ``tz``."""
    return (day_start(day + timedelta(days=1), tz).astimezone(UTC) - timedelta(microseconds=1)).astimezone(tz)


def stamp(value: datetime, tz: tzinfo | None = None) -> str:
    """``2024-07-25T08:00+09:00 (Thursday)``: an instant as the LM is shown it, with its own offset (or
    converted to ``tz``); naive = UTC."""
    local = aware(value).astimezone(tz) if tz is not None else aware(value)
    return f"{local.isoformat(timespec='minutes')} ({local:%A})"


def parse_date(value: object, tz: tzinfo = UTC, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or time → an aware datetime; anything else (not a string, empty, not ISO) → ``None``.

    A bare date (``2023-05-08``) is a day on ``tz``'s calendar: its first instant, or its last with
    ``end_of_day`` (so ``since=D, until=D`` covers day D). A naive time is wall time in ``tz``; a time with an
    offset is kept as given.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
        if len(text) <= 10:  # a bare date: 2023-05-08 or 20230508
            return (day_end if end_of_day else day_start)(parsed.date(), tz)
        result = aware(parsed, tz)
        result.astimezone(UTC)  # a time whose UTC form is outside years 1-9999 is no date
        return result
    except (ValueError, OverflowError):
        return None


# -- the grammar ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeRange:
    """An inclusive range of instants (aware, in the reference time's tzinfo) and the query text it came from."""

    since: datetime
    until: datetime
    expression: str


@dataclass(frozen=True)
class _Hit:
    first: date
    last: date
    day: date | None  # the fact's day (resolve_relative); None when the expression names no single day
    expression: str


def _shift_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _month(year: int, month: int, expr: str, day: date | None = None) -> _Hit:
    return _Hit(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), day, expr)


def _year(year: int, expr: str, day: date | None = None) -> _Hit:
    return _Hit(date(year, 1, 1), date(year, 12, 31), day, expr)


def _one(d: date, expr: str, *, is_fact_day: bool = True) -> _Hit:
    return _Hit(d, d, d if is_fact_day else None, expr)


def _number(text: str) -> int:
    text = " ".join(text.split())
    return int(text) if text.isdigit() else NUMBERS[text]


def _ago(n: int, unit: str, today: date, expr: str) -> _Hit:
    """``N units ago``: the unit-wide window around that point (a day, 7 days, a month, a year)."""
    unit = unit.rstrip("s")
    if unit == "day":
        return _one(today - timedelta(days=n), expr)
    if unit == "week":
        d = today - timedelta(weeks=n)
        return _Hit(d - timedelta(days=3), d + timedelta(days=3), d, expr)
    d = _shift_months(today, -n if unit == "month" else -12 * n)
    return _month(d.year, d.month, expr, d) if unit == "month" else _year(d.year, expr, d)


def _past(n: int, unit: str, today: date, expr: str) -> _Hit:
    """``the past N units``: from N units before today up to today."""
    unit = unit.rstrip("s")
    if unit == "day":
        first = today - timedelta(days=n)
    elif unit == "week":
        first = today - timedelta(weeks=n)
    else:
        first = _shift_months(today, -n if unit == "month" else -12 * n)
    return _Hit(first, today, None, expr)


def _period(which: str, unit: str, today: date, expr: str) -> _Hit:
    """``last/this/next week|month|year``: the calendar period; "last" also names a fact day."""
    offset = {"last": -1, "previous": -1, "this": 0, "next": 1}[which]
    if unit == "week":
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
        return _Hit(monday, monday + timedelta(days=6), today - timedelta(days=7) if offset < 0 else None, expr)
    if unit == "month":
        d = _shift_months(today.replace(day=1), offset)
        return _month(d.year, d.month, expr, _shift_months(today, -1) if offset < 0 else None)
    return _year(today.year + offset, expr, _shift_months(today, -12) if offset < 0 else None)


def _latest_year(month: int, today: date) -> int:
    """The year of the most recent ``month`` not after today."""
    return today.year if month <= today.month else today.year - 1


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b"), "iso"),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}})\b"), "dmy"),
    (re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b"), "mdy"),
    (re.compile(rf"\b({_MONTH_RE})\.?,?\s+(?:of\s+)?(\d{{4}})\b"), "my"),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b"), "dm"),
    (re.compile(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"), "md"),
    (re.compile(r"\b(?:the\s+)?day\s+before\s+yesterday\b"), "dby"),
    (re.compile(r"\byesterday\b"), "yesterday"),
    (re.compile(r"\blast\s+night\b"), "yesterday"),
    (re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b"), "dat"),
    (re.compile(r"\btomorrow\b"), "tomorrow"),
    (re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"), "today"),
    (re.compile(rf"\b({_NUM_RE})\s+({_UNIT_RE})\s+ago\b"), "ago"),
    (re.compile(rf"\b(?:in\s+)?the\s+(?:past|last)\s+({_NUM_RE})\s+({_UNIT_RE})\b"), "past"),
    (re.compile(r"\b(?:in\s+)?the\s+(?:past|last)\s+(day|week|month|year)\b"), "past1"),
    (re.compile(r"\b(last|previous|this|next)\s+(week|month|year)\b"), "period"),
    (re.compile(r"\b(last|previous|this|next)\s+weekend\b"), "weekend"),
    (re.compile(rf"\b(last|on|this past)\s+({_WEEKDAY_RE})\b"), "weekday"),
    (re.compile(r"\brecently\b"), "recently"),
    (re.compile(rf"\b(?:in|during)\s+({_MONTH_RE})\b(?!\s+\d)"), "month"),
    (re.compile(rf"\b(?:last|this past)\s+({_MONTH_RE})\b(?!\s+\d)"), "last_month_named"),
    (re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d{2})\b"), "year"),
]


def _interpret(rule: str, g: tuple[str, ...], today: date, expr: str) -> _Hit | None:
    """One matched rule → its range and fact day (``None``: an invalid calendar date, try the next rule)."""
    if rule in ("iso", "dmy", "mdy", "dm", "md"):
        if rule == "iso":
            y, mo, d = int(g[0]), int(g[1]), int(g[2])
        elif rule == "dmy":
            y, mo, d = int(g[2]), MONTHS[g[1]], int(g[0])
        elif rule == "mdy":
            y, mo, d = int(g[2]), MONTHS[g[0]], int(g[1])
        else:
            d, mo = (int(g[0]), MONTHS[g[1]]) if rule == "dm" else (int(g[1]), MONTHS[g[0]])
            y = _latest_year(mo, today)
        day = _valid(y, mo, d)
        return None if day is None else _one(day, expr, is_fact_day=False)
    if rule == "my":
        return _month(int(g[1]), MONTHS[g[0]], expr)
    if rule in ("dby", "yesterday", "dat", "tomorrow", "today"):
        shift = {"dby": -2, "yesterday": -1, "dat": 2, "tomorrow": 1, "today": 0}[rule]
        return _one(today + timedelta(days=shift), expr)
    if rule == "ago":
        return _ago(_number(g[0]), g[1], today, expr)
    if rule == "past":
        return _past(_number(g[0]), g[1], today, expr)
    if rule == "past1":
        return _past(1, g[0], today, expr)
    if rule == "period":
        return _period(g[0], g[1], today, expr)
    if rule == "weekday":
        back = (today.weekday() - WEEKDAYS[g[1]]) % 7 or 7
        return _one(today - timedelta(days=back), expr, is_fact_day=g[0] != "on")
    if rule == "weekend":
        saturday = today - timedelta(days=today.weekday()) + timedelta(days=5)  # this week's (Mon-Sun) Saturday
        if g[0] in ("last", "previous"):
            saturday = saturday if saturday + timedelta(days=1) < today else saturday - timedelta(weeks=1)
        elif g[0] == "next":
            saturday += timedelta(weeks=1)
        return _Hit(saturday, saturday + timedelta(days=1), None, expr)
    if rule == "last_month_named":
        month = MONTHS[g[0]]
        return _month(today.year if month < today.month else today.year - 1, month, expr)
    if rule == "recently":
        return _Hit(today - timedelta(days=30), today, None, expr)
    if rule == "month":
        month = MONTHS[g[0]]
        return _month(_latest_year(month, today), month, expr)
    return _year(int(g[0]), expr)  # "year"


def _hits(text: str, today: date) -> Iterator[_Hit]:
    """Every rule that matches ``text``, in rule order (at most one hit per rule: its first match)."""
    low = text.lower()
    source = text if len(low) == len(text) else low  # lower() may change the length of a few characters
    for pattern, rule in _RULES:
        m = pattern.search(low)
        if m is not None and (hit := _interpret(rule, m.groups(), today, source[m.start() : m.end()])):
            yield hit


def parse_time_range(query: str, now: datetime) -> TimeRange | None:
    """The range of instants the time expression in ``query`` names, counted from ``now`` on the calendar of
    ``now``'s tzinfo (naive = UTC); ``None`` when the query names no time. Bounds are aware datetimes in that
    tzinfo, both inclusive (the first and the last microsecond)."""
    now = aware(now)
    tz = now.tzinfo
    assert tz is not None
    try:
        for hit in _hits(query, now.date()):
            found = TimeRange(day_start(hit.first, tz), day_end(hit.last, tz), hit.expression)
            found.since.astimezone(UTC), found.until.astimezone(UTC)  # representable as UTC instants
            return found
    except (OverflowError, ValueError):  # near year 1 or 9999 ("yesterday" of 1 January, year 1): no range
        return None
    return None


def without_time_expressions(text: str) -> str:
    """``text`` with every time expression of the grammar blanked out (same length; "what did May do in May
    2024?" → "what did May do            ?"), so a month or weekday that is part of a date is not read as a name
    (graph retrieval matches entity names in what is left)."""
    low = text.lower()
    out = list(text if len(low) == len(text) else low)
    for pattern, _rule in _RULES:
        for m in pattern.finditer(low):
            out[m.start():m.end()] = " " * (m.end() - m.start())
    return "".join(out)


def resolve_relative(text: str, anchor: datetime) -> datetime | None:
    """The day a relative expression in ``text`` points to, counted from ``anchor`` (a message's timestamp) on
    the calendar of ``anchor``'s tzinfo (naive = UTC): the first instant of that local day, aware in that
    tzinfo. ``None`` when ``text`` has no expression naming a single day (see the module table)."""
    anchor = aware(anchor)
    tz = anchor.tzinfo
    assert tz is not None
    try:
        for hit in _hits(text, anchor.date()):
            if hit.day is not None:
                day = day_start(hit.day, tz)
                day.astimezone(UTC)
                return day
    except (OverflowError, ValueError):  # "99999 years ago", or a day outside years 1-9999 in UTC: none
        return None
    return None


__all__ = ["MONTHS", "NUMBERS", "WEEKDAYS", "TimeRange", "aware", "day_end", "day_start", "parse_date",
           "parse_time_range", "reference_time", "resolve_relative", "stamp", "zone"]
