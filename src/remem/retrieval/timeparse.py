"""A small rule-based parser for time expressions in queries (used when no LM resolves them).

``parse_time_range("what did I do last week?", now)`` returns the half-open-free, inclusive UTC range the
expression refers to, relative to ``now`` (the reference time: the moment the question is asked). It knows a
deliberately small grammar, every rule tested:

- ``today``, ``yesterday``, ``the day before yesterday``, ``tonight``/``this morning`` (= today)
- ``N days/weeks/months/years ago`` (numbers as digits or words up to twelve, ``a``/``an``/``a couple of``)
- ``last/this/next week|month|year``, ``past/last N days|weeks|months``, ``recently`` (past 30 days)
- ``last/on Monday`` … (the most recent such weekday before ``now``)
- ``in May 2023``, ``May 2023``, ``in May`` (the last May not after ``now``), ``in 2023``
- ``on 8 May 2023``, ``May 8, 2023``, ``8 May``, ``2023-05-08``, ``2023/05/08``

Anything else returns ``None``: a wrong range is worse than none, so the parser only answers when sure.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "couple of": 2, "few": 3}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_NUM_RE = r"\d{1,3}|" + "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True))
_UNIT_RE = r"days?|weeks?|months?|years?"


@dataclass(frozen=True)
class TimeRange:
    """An inclusive UTC range and the query text that produced it."""

    since: datetime
    until: datetime
    expression: str


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _day_end(d: date) -> datetime:
    return datetime.combine(d, time.max, tzinfo=UTC)


def _days(first: date, last: date, expr: str) -> TimeRange:
    return TimeRange(_day_start(first), _day_end(last), expr)


def _month(year: int, month: int, expr: str) -> TimeRange:
    last = calendar.monthrange(year, month)[1]
    return _days(date(year, month, 1), date(year, month, last), expr)


def _shift_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _number(text: str) -> int:
    text = " ".join(text.split())
    return int(text) if text.isdigit() else NUMBERS[text]


def _ago(n: int, unit: str, today: date, expr: str) -> TimeRange:
    """``N units ago``: the unit-wide window around that point (a day, a week, a month, a year)."""
    unit = unit.rstrip("s")
    if unit == "day":
        d = today - timedelta(days=n)
        return _days(d, d, expr)
    if unit == "week":
        d = today - timedelta(weeks=n)
        return _days(d - timedelta(days=3), d + timedelta(days=3), expr)
    if unit == "month":
        d = _shift_months(today, -n)
        return _month(d.year, d.month, expr)
    return _days(date(today.year - n, 1, 1), date(today.year - n, 12, 31), expr)


def _past(n: int, unit: str, today: date, expr: str) -> TimeRange:
    """``the past N units``: from N units before today up to today."""
    unit = unit.rstrip("s")
    if unit == "day":
        first = today - timedelta(days=n)
    elif unit == "week":
        first = today - timedelta(weeks=n)
    elif unit == "month":
        first = _shift_months(today, -n)
    else:
        first = date(today.year - n, today.month, min(today.day, 28))
    return _days(first, today, expr)


def _relative_period(which: str, unit: str, today: date, expr: str) -> TimeRange:
    offset = {"last": -1, "previous": -1, "this": 0, "next": 1}[which]
    if unit == "week":
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
        return _days(monday, monday + timedelta(days=6), expr)
    if unit == "month":
        d = _shift_months(today.replace(day=1), offset)
        return _month(d.year, d.month, expr)
    year = today.year + offset
    return _days(date(year, 1, 1), date(year, 12, 31), expr)


def _date(year: int, month: int, day: int, expr: str) -> TimeRange | None:
    try:
        d = date(year, month, day)
    except ValueError:
        return None
    return _days(d, d, expr)


def _last_month_named(month: int, today: date) -> int:
    """The year of the most recent ``month`` not after today."""
    return today.year if month <= today.month else today.year - 1


_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b"), "iso"),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}})\b"), "dmy"),
    (re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b"), "mdy"),
    (re.compile(rf"\b({_MONTH_RE})\.?,?\s+(?:of\s+)?(\d{{4}})\b"), "my"),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b"), "dm"),
    (re.compile(rf"\b({_MONTH_RE})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"), "md"),
    (re.compile(r"\bthe day before yesterday\b"), "dby"),
    (re.compile(r"\byesterday\b"), "yesterday"),
    (re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"), "today"),
    (re.compile(rf"\b({_NUM_RE})\s+({_UNIT_RE})\s+ago\b"), "ago"),
    (re.compile(rf"\b(?:in\s+)?the\s+(?:past|last)\s+({_NUM_RE})\s+({_UNIT_RE})\b"), "past"),
    (re.compile(r"\b(?:in\s+)?the\s+(?:past|last)\s+(day|week|month|year)\b"), "past1"),
    (re.compile(r"\b(last|previous|this|next)\s+(week|month|year)\b"), "period"),
    (re.compile(r"\b(?:last|on|this past)\s+(" + "|".join(WEEKDAYS) + r")\b"), "weekday"),
    (re.compile(r"\brecently\b"), "recently"),
    (re.compile(rf"\b(?:in|during)\s+({_MONTH_RE})\b(?!\s+\d)"), "month"),
    (re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d{2})\b"), "year"),
]


def parse_time_range(query: str, now: datetime) -> TimeRange | None:
    """The time range a query refers to, relative to ``now``; ``None`` when the query names no time, or when
    the range would fall outside the years a datetime can hold (``now`` near year 1 or 9999)."""
    try:
        return _parse_time_range(query, now)
    except (OverflowError, ValueError):
        return None


def _parse_time_range(query: str, now: datetime) -> TimeRange | None:
    text = query.lower()
    today = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).date()
    for pattern, rule in _RULES:
        m = pattern.search(text)
        if m is None:
            continue
        expr = query[m.start() : m.end()]
        g = m.groups()
        if rule == "iso":
            found = _date(int(g[0]), int(g[1]), int(g[2]), expr)
        elif rule == "dmy":
            found = _date(int(g[2]), MONTHS[g[1]], int(g[0]), expr)
        elif rule == "mdy":
            found = _date(int(g[2]), MONTHS[g[0]], int(g[1]), expr)
        elif rule == "my":
            return _month(int(g[1]), MONTHS[g[0]], expr)
        elif rule in ("dm", "md"):
            day, month = (int(g[0]), MONTHS[g[1]]) if rule == "dm" else (int(g[1]), MONTHS[g[0]])
            found = _date(_last_month_named(month, today), month, day, expr)
        elif rule == "dby":
            return _days(today - timedelta(days=2), today - timedelta(days=2), expr)
        elif rule == "yesterday":
            return _days(today - timedelta(days=1), today - timedelta(days=1), expr)
        elif rule == "today":
            return _days(today, today, expr)
        elif rule == "ago":
            return _ago(_number(g[0]), g[1], today, expr)
        elif rule == "past":
            return _past(_number(g[0]), g[1], today, expr)
        elif rule == "past1":
            return _past(1, g[0], today, expr)
        elif rule == "period":
            return _relative_period(g[0], g[1], today, expr)
        elif rule == "weekday":
            back = (today.weekday() - WEEKDAYS[g[0]]) % 7 or 7
            d = today - timedelta(days=back)
            return _days(d, d, expr)
        elif rule == "recently":
            return _days(today - timedelta(days=30), today, expr)
        elif rule == "month":
            month = MONTHS[g[0]]
            return _month(_last_month_named(month, today), month, expr)
        else:  # year
            year = int(g[0])
            return _days(date(year, 1, 1), date(year, 12, 31), expr)
        if found is not None:
            return found
    return None
