"""Writes: check runs and deployment protection rule answers. None is retried by the client (see app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from github import GithubObject

from gating.github_api.app import Installation, Repo
from gating.github_api.errors import translated


@dataclass(frozen=True)
class ExistingCheckRun:
    id: int
    external_id: str
    status: str


@translated
def create_check_run(repo: Repo, name: str, head_sha: str, external_id: str = "") -> int:
    """A new check run, in progress, on `head_sha`; its id. `external_id` marks it as this attempt's."""
    marked: str | GithubObject._NotSetType = external_id or GithubObject.NotSet
    return int(repo.api.create_check_run(name=name, head_sha=head_sha, status="in_progress", external_id=marked).id)


@translated
def latest_check_run(repo: Repo, name: str, head_sha: str, app_id: str) -> ExistingCheckRun | None:
    """This app's latest check run named `name` on `head_sha`, if any.

    A read, but it belongs with the create: a POST whose answer was lost may still have created
    the run, and looking first is what keeps a retry from adding a second one.
    """
    _headers, data = repo.api._requester.requestJsonAndCheck(
        "GET",
        f"{repo.api.url}/commits/{head_sha}/check-runs",
        parameters={"check_name": name, "app_id": int(app_id), "filter": "latest", "per_page": 1},
    )
    runs = (data or {}).get("check_runs") or []
    if not runs:
        return None
    run = runs[0]
    return ExistingCheckRun(int(run["id"]), str(run.get("external_id") or ""), str(run.get("status") or ""))


@translated
def update_check_run(repo: Repo, run_id: int, fields: dict[str, Any]) -> None:
    # PATCH through the requester: editing a lazily built CheckRun object would need a GET first.
    repo.api._requester.requestJsonAndCheck("PATCH", f"{repo.api.url}/check-runs/{run_id}", input=fields)


def post_protection_rule_review(installation: Installation, callback_url: str, body: dict[str, Any]) -> None:
    """POST to a deployment protection rule callback: an answer (with `state`) or a progress report.

    PyGithub keeps only the URL's path and sends it to the configured host, so the caller checks the
    URL's host first. Not retried by the client: a failure surfaces and the caller decides.
    """
    installation.request("POST", callback_url, body)
