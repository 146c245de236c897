"""GitHub's failures as the gates see them, whatever the client library raised."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import requests
from github import GithubException, UnknownObjectException

P = ParamSpec("P")
T = TypeVar("T")


class GitHubError(Exception):
    """GitHub answered with an error (`status`), or could not be reached (`status` None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status

    def describe(self) -> str:
        """A short phrase safe to publish: the status, never a response body."""
        return f"GitHub answered {self.status}" if self.status is not None else "GitHub could not be reached"


class GitHubNotFound(GitHubError):
    """404: the object (or the app's access to it) does not exist."""


class InstallationGone(GitHubNotFound):
    """The app is not installed on that account (any more): nothing can be read or answered there."""


class GitHubUnavailable(GitHubError):
    """No answer at all: connection refused or reset, DNS, a read timeout."""


def translated(call: Callable[P, T]) -> Callable[P, T]:
    """Run `call`, turning PyGithub's and requests' exceptions into GitHubError."""

    @functools.wraps(call)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except UnknownObjectException as exc:
            raise GitHubNotFound(404, _message(exc)) from exc
        except GithubException as exc:
            raise GitHubError(exc.status, _message(exc)) from exc
        except requests.RequestException as exc:
            raise GitHubUnavailable(None, f"{type(exc).__name__}: {exc}") from exc

    return run


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return f"{exc.status}: {data.get('message') or exc.message or ''}".rstrip(": ")
