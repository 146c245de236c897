"""Writes: check runs and deployment protection rule answers. None is retried by the client (see app.py)."""

from __future__ import annotations

from typing import Any

from gating.github_api.app import Installation, Repo
from gating.github_api.errors import translated


@translated
def create_check_run(repo: Repo, name: str, head_sha: str) -> int:
    """A new check run, in progress, on `head_sha`; its id."""
    return int(repo.api.create_check_run(name=name, head_sha=head_sha, status="in_progress").id)


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
