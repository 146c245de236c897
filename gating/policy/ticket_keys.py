"""Finding Jira keys in titles, branch names and commit messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A key is a project key (letter, then letters, digits or underscores) and a number.
# The look-arounds keep "XPAY-1" from yielding "PAY-1" and "PAY-12" from yielding "PAY-1".
_KEY = r"(?<![A-Za-z0-9])([A-Z][A-Z0-9_]+-[0-9]+)(?![0-9])"
KEY_PATTERN = re.compile(_KEY)
BRANCH_KEY_PATTERN = re.compile(_KEY, re.IGNORECASE)


def find_keys(text: str | None, projects: Iterable[str] = (), *, ignore_case: bool = False) -> tuple[str, ...]:
    """Keys in `text`, in order of first appearance, limited to `projects` when any are given."""
    if not text:
        return ()
    pattern = BRANCH_KEY_PATTERN if ignore_case else KEY_PATTERN
    allowed = {p.upper() for p in projects}
    found: dict[str, None] = {}
    for match in pattern.finditer(text):
        key = match.group(1).upper()
        if allowed and key.rsplit("-", 1)[0] not in allowed:
            continue
        found.setdefault(key, None)
    return tuple(found)


def sort_keys(keys: Iterable[str]) -> list[str]:
    """Project, then number: PAY-2 before PAY-10."""

    def order(key: str) -> tuple[str, int]:
        project, _, number = key.rpartition("-")
        return project, int(number)

    return sorted(set(keys), key=order)
