"""remem.timeexpr: each rule of the grammar, relative to a fixed reference time, on its own calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from remem import ValidationError
from remem.timeexpr import parse_date, parse_time_range, reference_time, resolve_relative, stamp, zone

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
        ("what did I eat last night", date(2023, 5, 9), date(2023, 5, 9)),
        ("tomorrow", date(2023, 5, 11), date(2023, 5, 11)),
        ("the day after tomorrow", date(2023, 5, 12), date(2023, 5, 12)),
        ("last weekend", date(2023, 5, 6), date(2023, 5, 7)),
        ("this weekend", date(2023, 5, 13), date(2023, 5, 14)),
        ("next weekend", date(2023, 5, 20), date(2023, 5, 21)),
        ("last March", date(2023, 3, 1), date(2023, 3, 31)),
        ("last May", date(2022, 5, 1), date(2022, 5, 31)),  # this May is not over yet
        ("in May", date(2023, 5, 1), date(2023, 5, 31)),
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


# -- the caller's calendar (issue 8, part 4) ---------------------------------------------------------------------
TOKYO = timezone(timedelta(hours=9))
BERLIN = ZoneInfo("Europe/Berlin")


def bounds(query: str, now: datetime) -> tuple[str, str]:
    found = parse_time_range(query, now)
    assert found is not None, query
    return found.since.astimezone(UTC).isoformat(), found.until.astimezone(UTC).isoformat()


def test_ranges_are_local_days_as_instants() -> None:
    now = datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)  # 24 July 23:00 UTC
    assert bounds("yesterday", now) == ("2024-07-23T15:00:00+00:00", "2024-07-24T14:59:59.999999+00:00")
    found = parse_time_range("yesterday", now)
    assert found is not None and found.since.isoformat() == "2024-07-24T00:00:00+09:00"  # in the caller's zone
    pdt = timezone(timedelta(hours=-7))
    assert bounds("tomorrow", datetime(2024, 7, 25, 20, 0, tzinfo=pdt)) == (  # 26 July 03:00 UTC
        "2024-07-26T07:00:00+00:00", "2024-07-27T06:59:59.999999+00:00")
    assert bounds("the day after tomorrow", datetime(2024, 7, 25, 20, 0, tzinfo=pdt))[0] == "2024-07-27T07:00:00+00:00"


def test_zoneinfo_ranges_are_exact_across_dst_and_fixed_offsets_stay_fixed() -> None:
    # last week seen on Wednesday 3 April 2024 in Berlin: Mon 25 March (CET, +01:00) .. Sun 31 March (CEST, +02:00)
    assert bounds("last week", datetime(2024, 4, 3, 10, 0, tzinfo=BERLIN)) == (
        "2024-03-24T23:00:00+00:00", "2024-03-31T21:59:59.999999+00:00")
    # 31 March 2024 has 23 hours, 27 October 2024 has 25
    assert bounds("today", datetime(2024, 3, 31, 12, 0, tzinfo=BERLIN)) == (
        "2024-03-30T23:00:00+00:00", "2024-03-31T21:59:59.999999+00:00")
    assert bounds("yesterday", datetime(2024, 10, 28, 9, 0, tzinfo=BERLIN)) == (
        "2024-10-26T22:00:00+00:00", "2024-10-27T22:59:59.999999+00:00")
    fixed = datetime(2024, 3, 31, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert bounds("yesterday", fixed) == ("2024-03-29T22:00:00+00:00", "2024-03-30T21:59:59.999999+00:00")
    # America/Santiago skipped midnight on 8 September 2024 (00:00 -04 → 01:00 -03): the day starts at 01:00
    santiago = ZoneInfo("America/Santiago")
    assert bounds("today", datetime(2024, 9, 8, 12, 0, tzinfo=santiago))[0] == "2024-09-08T04:00:00+00:00"


@pytest.mark.parametrize(("text", "expected"), [
    ("I went there yesterday", "2024-07-24T00:00:00+09:00"),
    ("the day before yesterday", "2024-07-23T00:00:00+09:00"),
    ("I start tomorrow", "2024-07-26T00:00:00+09:00"),
    ("tonight we cook", "2024-07-25T00:00:00+09:00"),
    ("we danced last night", "2024-07-24T00:00:00+09:00"),
    ("We met 3 days ago", "2024-07-22T00:00:00+09:00"),
    ("a week ago I ran", "2024-07-18T00:00:00+09:00"),
    ("last week we moved", "2024-07-18T00:00:00+09:00"),
    ("previous week we moved", "2024-07-18T00:00:00+09:00"),
    ("two months ago", "2024-05-25T00:00:00+09:00"),
    ("last month I quit", "2024-06-25T00:00:00+09:00"),
    ("a year ago", "2023-07-25T00:00:00+09:00"),
    ("last Monday we hiked", "2024-07-22T00:00:00+09:00"),
    ("this past Thursday", "2024-07-18T00:00:00+09:00"),
    ("on 3 May 2024 and yesterday", "2024-07-24T00:00:00+09:00"),  # an explicit date names no fact day: next
])
def test_fact_days_are_local_days_of_the_message(text: str, expected: str) -> None:
    anchor = datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)  # Thursday; 24 July 23:00 UTC
    resolved = resolve_relative(text, anchor)
    assert resolved is not None and resolved.isoformat() == expected


@pytest.mark.parametrize("text", ["see you on Monday", "in May", "on 3 May 2024", "recently", "next week",
                                  "in the past 3 days", "last weekend", "last May", "I like tea"])
def test_expressions_without_a_single_past_day_give_no_fact_day(text: str) -> None:
    assert resolve_relative(text, datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)) is None


def test_fact_day_across_midnight_and_dst() -> None:
    cest = timezone(timedelta(hours=2))
    assert resolve_relative("yesterday", datetime(2023, 5, 8, 0, 30, tzinfo=cest)) == datetime(2023, 5, 7,
                                                                                                tzinfo=cest)
    spring = resolve_relative("yesterday", datetime(2024, 3, 31, 12, 0, tzinfo=BERLIN))
    assert spring is not None and spring.isoformat() == "2024-03-30T00:00:00+01:00"
    assert resolve_relative("yesterday", datetime(2023, 5, 8, 0, 30)) == datetime(2023, 5, 7, tzinfo=UTC)


def test_parse_date_reads_bare_dates_and_naive_times_in_the_zone() -> None:
    assert parse_date("2024-07-24", TOKYO) == datetime(2024, 7, 24, tzinfo=TOKYO)
    assert parse_date("2024-07-24", TOKYO, end_of_day=True) == datetime(2024, 7, 24, 23, 59, 59, 999999,
                                                                       tzinfo=TOKYO)
    assert parse_date("2024-07-24T10:00", BERLIN) == datetime(2024, 7, 24, 8, 0, tzinfo=UTC)
    assert parse_date("2024-07-24T10:00+09:00", BERLIN) == datetime(2024, 7, 24, 1, 0, tzinfo=UTC)
    assert parse_date("2024-07-24") == datetime(2024, 7, 24, tzinfo=UTC)
    assert parse_date("24 July") is None and parse_date("") is None and parse_date(7) is None


def test_zone_names_and_reference_time() -> None:
    assert zone("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    for bad in ("Mars/Olympus", "europe/berlin", "../etc/passwd", "", "+09:00"):
        with pytest.raises(ValidationError, match="timezone") as exc:
            zone(bad)
        assert exc.value.context == {"field": "timezone"}
    with pytest.raises(ValidationError, match="--tz"):
        zone("Nowhere", "--tz")
    assert reference_time(datetime(2024, 7, 25, 8, 0), "Asia/Tokyo").isoformat() == "2024-07-25T08:00:00+09:00"
    assert reference_time(datetime(2024, 7, 24, 23, 0, tzinfo=UTC), "Asia/Tokyo").isoformat() == (
        "2024-07-25T08:00:00+09:00")
    assert reference_time(datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)).utcoffset() == timedelta(hours=9)
    assert reference_time(datetime(2024, 7, 25, 8, 0)).tzinfo is UTC
    assert reference_time(None, "Asia/Tokyo").tzinfo == ZoneInfo("Asia/Tokyo")
    assert reference_time().tzinfo is UTC


def test_stamp_shows_the_own_offset_or_a_given_zone() -> None:
    assert stamp(datetime(2024, 7, 25, 8, 0, tzinfo=TOKYO)) == "2024-07-25T08:00+09:00 (Thursday)"
    assert stamp(datetime(2024, 7, 24, 23, 0, tzinfo=UTC), BERLIN) == "2024-07-25T01:00+02:00 (Thursday)"
    assert stamp(datetime(2024, 7, 24, 23, 0)) == "2024-07-24T23:00+00:00 (Wednesday)"


@pytest.mark.parametrize(("day", "first"), [(date(2024, 7, 29), date(2024, 7, 27)),  # Monday: the one just over
                                            (date(2024, 7, 27), date(2024, 7, 20)),  # Saturday: the one before
                                            (date(2024, 7, 28), date(2024, 7, 20))])  # Sunday: the one before
def test_last_weekend_is_the_latest_one_that_is_over(day: date, first: date) -> None:
    found = parse_time_range("last weekend", datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    assert found is not None and (found.since.date(), found.until.date()) == (first, first + timedelta(days=1))
