"""Which repositories a viewer of the console may see, applied by every query and route that shows evidence.

A scope is a set of repository patterns (`acme/*`, `acme/web`, `*`), matched without regard to case as
GitHub names are. Every request gets one from whoever it authenticated as; a request with none sees nothing
(fail closed), so a route that forgets to authenticate shows no dossier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import g
from sqlalchemy import ColumnElement, false, func, or_, true
from sqlalchemy.orm import InstrumentedAttribute


@dataclass(frozen=True)
class Scope:
    """`patterns` None: every repository; otherwise those matching one of them (none: nothing)."""

    patterns: tuple[str, ...] | None = None

    @classmethod
    def of(cls, patterns: str | None) -> Scope:
        """From a comma- or space-separated list as given on the command line; blank means every repository."""
        names = tuple(p for p in re.split(r"[,\s]+", patterns or "") if p)
        return cls(None if not names or "*" in names else names)

    @property
    def everything(self) -> bool:
        return self.patterns is None

    def allows(self, repository: str | None) -> bool:
        if self.patterns is None:
            return True
        if not repository:
            return False
        return any(_regex(pattern).fullmatch(repository.lower()) for pattern in self.patterns)

    def clause(self, column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None]) -> ColumnElement[bool]:
        """The same test as `allows`, as SQL on a repository column."""
        if self.patterns is None:
            return true()
        if not self.patterns:
            return false()
        return or_(*(func.lower(column).like(_like(pattern), escape="\\") for pattern in self.patterns))

    def describe(self) -> str:
        return "every repository" if self.patterns is None else ", ".join(self.patterns) or "no repository"


EVERYTHING = Scope()
NOTHING = Scope(())


def current_scope() -> Scope:
    """The scope of the request's viewer, set when it authenticated; none set means nothing is visible."""
    scope = g.get("scope")
    return scope if isinstance(scope, Scope) else NOTHING


def _regex(pattern: str) -> re.Pattern[str]:
    # Only `*` is special: a repository name has no other wildcard worth supporting, and `?`/`[` stay literal.
    return re.compile(".*".join(re.escape(part) for part in pattern.lower().split("*")))


def _like(pattern: str) -> str:
    escaped = pattern.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")
