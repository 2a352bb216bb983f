"""Dates for facts: parse the LM's ``YYYY-MM-DD`` and, as a fallback, resolve common relative expressions.

The extractor is asked to resolve relative dates itself; this module is the host's safety net for when it
gives no date: "yesterday" in a message of 8 May 2023 is 7 May 2023, whatever the model did.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3}

_AGO = re.compile(r"\b(\d+|a couple of|a few|an?|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
                  r"(day|week|month|year)s?\s+ago\b")


def parse_date(value: object) -> datetime | None:
    """``YYYY-MM-DD`` (or a full ISO timestamp) → aware UTC datetime at midnight; anything else → None (also a
    time whose UTC form falls outside years 1-9999, e.g. ``0001-01-01T00:00:00+01:00``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def resolve_relative(text: str, anchor: datetime) -> datetime | None:
    """The day a relative expression in ``text`` points to, counted from ``anchor`` (None if there is none, or
    if that day falls outside years 1-9999: "99999 years ago", "yesterday" of 1 January of year 1)."""
    try:
        return _resolve_relative(text, anchor)
    except (OverflowError, ValueError):
        return None


def _resolve_relative(text: str, anchor: datetime) -> datetime | None:
    low = text.casefold()
    day = anchor.astimezone(UTC).date()
    result: date | None = None
    if "day before yesterday" in low:
        result = day - timedelta(days=2)
    elif re.search(r"\byesterday\b", low):
        result = day - timedelta(days=1)
    elif "day after tomorrow" in low:
        result = day + timedelta(days=2)
    elif re.search(r"\btomorrow\b", low):
        result = day + timedelta(days=1)
    elif re.search(r"\b(today|tonight|this morning|this afternoon|this evening)\b", low):
        result = day
    elif m := _AGO.search(low):
        count = int(m.group(1)) if m.group(1).isdigit() else _NUMBERS[m.group(1)]
        result = day - timedelta(days=count * _UNITS[m.group(2)])
    elif m := re.search(r"\blast (week|month|year)\b", low):
        result = day - timedelta(days=_UNITS[m.group(1)])
    elif m := re.search(r"\blast (" + "|".join(_WEEKDAYS) + r")\b", low):
        target = _WEEKDAYS.index(m.group(1))
        back = (day.weekday() - target) % 7 or 7
        result = day - timedelta(days=back)
    if result is None:
        return None
    return datetime.combine(result, time(), tzinfo=UTC)
