"""CI checks on a SHA: whether each succeeded, and whether an environment's required checks did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# A check run that finished with one of these conclusions did not fail the change.
PASSING_CONCLUSIONS = ("success", "neutral", "skipped")


def check_succeeded(kind: str, status: str | None, conclusion: str | None) -> bool:
    """The one place that decides whether a check run (`check_run`) or commit status (`status`) passed."""
    if kind == "status":
        return status == "success"
    return status == "completed" and conclusion in PASSING_CONCLUSIONS


@dataclass(frozen=True)
class CheckResult:
    name: str
    kind: str  # check_run | status
    status: str
    conclusion: str | None
    raw: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return check_succeeded(self.kind, self.status, self.conclusion)

    @property
    def state(self) -> str:
        """What a person would call its result: the conclusion of a check run, else its status."""
        return self.conclusion or self.status


class Check(Protocol):
    """What deciding a required check needs: a recorded check as much as one just read from GitHub."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def succeeded(self) -> bool: ...


@dataclass(frozen=True)
class RecordedCheck:
    """A check as the evidence recorded it."""

    name: str
    state: str
    succeeded: bool


@dataclass(frozen=True)
class RequiredCheck:
    name: str
    passed: bool
    results: tuple[str, ...]  # every result seen under that name, sorted; empty when there was none

    @property
    def found(self) -> bool:
        return bool(self.results)


def evaluate_required_checks(required: Sequence[str], checks: Sequence[Check]) -> tuple[RequiredCheck, ...]:
    """Each required name passes when any check of that name succeeded on the SHA."""
    out = []
    for name in required:
        matching = [c for c in checks if c.name == name]
        results = tuple(sorted({c.state for c in matching}))
        out.append(RequiredCheck(name, any(c.succeeded for c in matching), results))
    return tuple(out)
