"""How the console says things: counts with their plurals, times to the second in UTC, relative times and durations.

Pure functions of their arguments (the present moment is passed in), so the dossier's template stays declarative and
its wording is tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

_IRREGULAR = {"entry": "entries", "person": "people", "was": "were", "does": "do", "is": "are"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 commit', '2 commits', '0 commits'; `many` for a plural that is not `word` + s."""
    return f"{count} {noun(count, word, many)}"


def noun(count: int, word: str, many: str | None = None) -> str:
    """The word alone, agreeing with `count`: noun(2, 'ticket') is 'tickets'."""
    if count == 1:
        return word
    return many or _IRREGULAR.get(word) or word + "s"


def join_words(items: Sequence[str], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [item for item in items if item]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def parse_time(value: object) -> datetime | None:
    """A recorded time (ISO 8601, `Z` or an offset) as an aware UTC datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def utc(value: object) -> str:
    """'2026-12-01 12:37:39 UTC': to the second, in UTC; '' when there is no time."""
    moment = parse_time(value)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment is not None else ""


def duration(seconds: float) -> str:
    """A span in the two largest units that matter: '45 s', '12 min 5 s', '3 h 12 min', '2 days 4 h'."""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{plural(days, 'day')}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{secs} s"


def relative(value: object, now: datetime) -> str:
    """'2 days ago', '3 hours ago', 'in 5 minutes', 'just now' (within a second); '' when there is no time."""
    moment = parse_time(value)
    if moment is None:
        return ""
    delta = (now - moment).total_seconds()
    seconds = int(abs(delta))
    if seconds < 1:
        return "just now"
    for size, unit in ((86400 * 365, "year"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            amount = plural(seconds // size, unit)
            return f"{amount} ago" if delta > 0 else f"in {amount}"
    raise AssertionError("unreachable: a second or more matched the last unit")  # pragma: no cover


def when(value: object, now: datetime) -> str:
    """'2026-12-01 12:37:39 UTC (2 days ago)'; '' when there is no time."""
    text = utc(value)
    return f"{text} ({relative(value, now)})" if text else ""


def approval_timing(approved_at: object, requested_at: object) -> tuple[str, str]:
    """How an approval relates to the request, in words, and its class: before, after, unknown or missing.

    'approved 3 h 12 min before the request', 'approved 5 min after the request', 'approved at the moment of the
    request', 'not approved'; compared to the second, as the gate compares them.
    """
    approved, requested = parse_time(approved_at), parse_time(requested_at)
    if approved is None:
        return "not approved", "missing"
    if requested is None:
        return f"approved at {utc(approved)}; the request time is not recorded", "unknown"
    gap = (requested - approved.replace(microsecond=0)).total_seconds()
    if gap == 0:
        return "approved at the moment of the request", "before"
    if gap > 0:
        return f"approved {duration(gap)} before the request", "before"
    return f"approved {duration(gap)} after the request", "after"
