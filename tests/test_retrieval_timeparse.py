"""The rule-based time-expression parser: each rule, relative to a fixed reference time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from remem.retrieval.timeparse import parse_time_range

NOW = datetime(2023, 5, 10, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("query", "first", "last"),
    [
        ("what did I do yesterday?", date(2023, 5, 9), date(2023, 5, 9)),
        ("the day before yesterday", date(2023, 5, 8), date(2023, 5, 8)),
        ("what happened today", date(2023, 5, 10), date(2023, 5, 10)),
        ("2 days ago", date(2023, 5, 8), date(2023, 5, 8)),
        ("three days ago", date(2023, 5, 7), date(2023, 5, 7)),
        ("a week ago", date(2023, 4, 30), date(2023, 5, 6)),
        ("what did I do last week", date(2023, 5, 1), date(2023, 5, 7)),
        ("this week", date(2023, 5, 8), date(2023, 5, 14)),
        ("last month", date(2023, 4, 1), date(2023, 4, 30)),
        ("a month ago", date(2023, 4, 1), date(2023, 4, 30)),
        ("last year", date(2022, 1, 1), date(2022, 12, 31)),
        ("in the past 3 days", date(2023, 5, 7), date(2023, 5, 10)),
        ("in the past month", date(2023, 4, 10), date(2023, 5, 10)),
        ("on 8 May 2023", date(2023, 5, 8), date(2023, 5, 8)),
        ("May 8, 2023", date(2023, 5, 8), date(2023, 5, 8)),
        ("on the 8th of May, 2023", date(2023, 5, 8), date(2023, 5, 8)),
        ("2023-05-08", date(2023, 5, 8), date(2023, 5, 8)),
        ("in May 2023", date(2023, 5, 1), date(2023, 5, 31)),
        ("what did she paint in June", date(2022, 6, 1), date(2022, 6, 30)),  # the last June before now
        ("in 2022", date(2022, 1, 1), date(2022, 12, 31)),
        ("last Friday", date(2023, 5, 5), date(2023, 5, 5)),
        ("on Wednesday", date(2023, 5, 3), date(2023, 5, 3)),  # the previous one, not today
        ("recently", date(2023, 4, 10), date(2023, 5, 10)),
    ],
)
def test_expressions_resolve_to_inclusive_day_ranges(query: str, first: date, last: date) -> None:
    found = parse_time_range(query, NOW)
    assert found is not None, query
    assert (found.since.date(), found.until.date()) == (first, last)
    assert found.since.tzinfo is not None and found.until.time().hour == 23
    assert found.expression.lower() in query.lower()


@pytest.mark.parametrize("query", ["what does Alice drink?", "may I ask about her dog", "the 30 apples", ""])
def test_no_time_expression_gives_none(query: str) -> None:
    assert parse_time_range(query, NOW) is None


def test_naive_reference_time_is_utc_and_an_invalid_day_falls_back_to_its_month() -> None:
    found = parse_time_range("yesterday", datetime(2024, 3, 1, 0, 30))
    assert found is not None and found.since.date() == date(2024, 2, 29)
    month = parse_time_range("on 31 February 2023", NOW)
    assert month is not None and (month.since.date(), month.until.date()) == (date(2023, 2, 1), date(2023, 2, 28))
