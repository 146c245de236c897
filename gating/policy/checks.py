"""CI checks on a SHA: whether each succeeded, and whether an environment's required checks did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

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
    def app(self) -> str | None:
        """The slug of the GitHub App that posted a check run; commit statuses name no app."""
        app = self.raw.get("app") if self.kind == "check_run" else None
        return app if isinstance(app, str) else None

    @property
    def order(self) -> int:
        """Later check runs have larger ids; a commit status is already its context's latest."""
        ident = self.raw.get("id")
        return ident if isinstance(ident, int) and self.kind == "check_run" else 0

    @property
    def state(self) -> str:
        """What a person would call its result: the conclusion of a check run, else its status."""
        return self.conclusion or self.status


C = TypeVar("C", bound="Check")


class Check(Protocol):
    """What deciding a required check needs: a recorded check as much as one just read from GitHub."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def succeeded(self) -> bool: ...

    @property
    def app(self) -> str | None: ...

    @property
    def order(self) -> int: ...


@dataclass(frozen=True)
class RecordedCheck:
    """A check as the evidence recorded it."""

    name: str
    state: str
    succeeded: bool
    app: str | None = None
    order: int = 0


def current_checks(checks: Sequence[C]) -> list[C]:
    """Each app's latest run of each check name (a failed re-run overrides the success before it), and every
    commit status (GitHub already reports only the latest per context)."""
    latest: dict[tuple[str | None, str], C] = {}
    statuses: list[C] = []
    for check in checks:
        if check.order == 0:
            statuses.append(check)
        elif (key := (check.app, check.name)) not in latest or check.order > latest[key].order:
            latest[key] = check
    return [*statuses, *latest.values()]


@dataclass(frozen=True)
class RequiredCheckRule:
    """A check that must have succeeded: by name, and by the app that posts it when pinned.

    Any app installed on a repository can post a check run named `build`; pinning the app
    (`{name: build, app: github-actions}`) makes only that app's run count.
    """

    name: str
    app: str | None = None

    @classmethod
    def of(cls, value: str | Mapping[str, Any]) -> RequiredCheckRule:
        """From the policy file or recorded evidence: a name, or a {name, app} mapping."""
        if isinstance(value, str):
            return cls(value)
        app = value.get("app")
        return cls(str(value["name"]), str(app) if app else None)

    def matches(self, check: Check) -> bool:
        return check.name == self.name and (self.app is None or check.app == self.app)

    def label(self) -> str:
        return f"{self.name} (by {self.app})" if self.app else self.name

    def record(self) -> str | dict[str, str]:
        """As the evidence keeps it: the plain name when no app is pinned, as earlier entries did."""
        return {"name": self.name, "app": self.app} if self.app else self.name


@dataclass(frozen=True)
class RequiredCheck:
    rule: RequiredCheckRule
    passed: bool
    results: tuple[str, ...]  # every result of a matching check, sorted; empty when there was none
    other_apps: tuple[str, ...] = ()  # apps that posted a check of that name which does not count

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def found(self) -> bool:
        return bool(self.results)


def evaluate_required_checks(
    required: Sequence[RequiredCheckRule | str | Mapping[str, Any]], checks: Sequence[Check]
) -> tuple[RequiredCheck, ...]:
    """Each rule passes when any matching check (its name, and its app when pinned) succeeded on the SHA."""
    current = current_checks(checks)
    out = []
    for value in required:
        rule = value if isinstance(value, RequiredCheckRule) else RequiredCheckRule.of(value)
        matching = [c for c in current if rule.matches(c)]
        others = sorted({c.app or "a commit status" for c in current if c.name == rule.name and not rule.matches(c)})
        results = tuple(sorted({c.state for c in matching}))
        out.append(RequiredCheck(rule, any(c.succeeded for c in matching), results, tuple(others)))
    return tuple(out)
