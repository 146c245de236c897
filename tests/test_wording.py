"""The console's wording: plurals, times to the second in UTC, relative times, durations, approval timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gating.console.wording import (
    approval_timing,
    duration,
    join_words,
    noun,
    parse_time,
    plural,
    relative,
    utc,
    when,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def test_plurals() -> None:
    assert [plural(n, "commit") for n in (0, 1, 2)] == ["0 commits", "1 commit", "2 commits"]
    assert plural(2, "entry") == "2 entries" and plural(1, "entry") == "1 entry"
    assert plural(3, "person") == "3 people" and plural(2, "index", "indices") == "2 indices"
    assert noun(1, "does") == "does" and noun(2, "does") == "do" and noun(2, "was") == "were"


def test_join_words() -> None:
    assert join_words([]) == "" and join_words(["a"]) == "a" and join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "", "b", "c"]) == "a, b and c" and join_words(["a", "b"], "or") == "a or b"


def test_times_are_read_from_what_the_evidence_records_and_written_to_the_second_in_utc() -> None:
    assert parse_time("2026-12-01T12:37:39.943000Z") == datetime(2026, 12, 1, 12, 37, 39, 943000, tzinfo=UTC)
    assert parse_time("2024-01-18T08:27:50+02:00") == datetime(2024, 1, 18, 6, 27, 50, tzinfo=UTC)
    assert parse_time(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)  # naive: taken as UTC
    assert parse_time(None) is None and parse_time("") is None and parse_time("yesterday") is None
    assert parse_time(42) is None
    assert utc("2026-12-01T12:37:39.943Z") == "2026-12-01 12:37:39 UTC" and utc(None) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (725, "12 min 5 s"),
        (3600, "1 h"),
        (3 * 3600 + 12 * 60 + 30, "3 h 12 min"),
        (86400, "1 day"),
        (2 * 86400 + 4 * 3600, "2 days 4 h"),
        (-90, "1 min 30 s"),
    ],
)
def test_durations(seconds: int, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=59), "59 seconds ago"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(hours=3, minutes=59), "3 hours ago"),
        (timedelta(days=2, hours=23), "2 days ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(minutes=5), "in 5 minutes"),
    ],
)
def test_relative_times(delta: timedelta, text: str) -> None:
    assert relative(NOW - delta, NOW) == text


def test_when_gives_both() -> None:
    assert when(NOW - timedelta(days=2), NOW) == "2026-11-29 12:00:00 UTC (2 days ago)"
    assert when(None, NOW) == "" and relative(None, NOW) == ""


def test_approval_timing_against_the_request() -> None:
    request = "2026-12-01T12:00:00Z"
    assert approval_timing("2026-12-01T08:47:30Z", request) == ("approved 3 h 12 min before the request", "before")
    assert approval_timing("2026-12-01T12:05:00Z", request) == ("approved 5 min after the request", "after")
    # To the second, as the gate compares: an approval in the request's second is before it.
    assert approval_timing("2026-12-01T12:00:00.600Z", request) == ("approved at the moment of the request", "before")
    assert approval_timing(None, request) == ("not approved", "missing")
    assert approval_timing("2026-12-01T08:47:30Z", None) == (
        "approved at 2026-12-01 08:47:30 UTC; the request time is not recorded",
        "unknown",
    )
