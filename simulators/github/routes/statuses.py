"""Commit statuses: posted per context, listed, and combined per commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from simulators.github.errors import ApiError
from simulators.github.render import node_id, repo_json, user_json
from simulators.github.routes.common import answer, as_installation, json_body, paginate, simulator
from simulators.github.state import STATUS_STATES, _Repo, iso, now

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

bp = Blueprint("statuses", __name__)


def new_status(
    sim: GitHubSimulator,
    repo: _Repo,
    sha: str,
    state: str,
    context: str,
    description: str | None,
    target_url: str | None,
    creator_login: str,
) -> dict[str, Any]:
    """Posts a status on a commit; kept as GitHub lists it, since a status never changes once posted."""
    status_id = sim.store.next_id("status", 30_000_000_000)
    moment = iso(now())
    creator = user_json(sim, creator_login)
    creator["type"] = "Bot" if creator_login.endswith("[bot]") else "User"
    status = {
        "url": f"{sim.api}/repos/{repo.full_name}/statuses/{sha}",
        "avatar_url": creator["avatar_url"],
        "id": status_id,
        "node_id": node_id("StatusContext", status_id),
        "state": state,
        "description": description,
        "target_url": target_url,
        "context": context,
        "created_at": moment,
        "updated_at": moment,
        "creator": creator,
    }
    repo.statuses.setdefault(sha, []).append(status)
    return status


@bp.post("/repos/<owner>/<repo>/statuses/<sha>")
@as_installation
def create_status(repo: _Repo, sha: str) -> Response:
    sim = simulator()
    body = json_body()
    if sha not in repo.commits:
        raise ApiError(422, f"No commit found for SHA: {sha}")
    if body.get("state") not in STATUS_STATES:
        raise ApiError(422, "Validation Failed", [{"resource": "Status", "field": "state", "code": "invalid"}])
    status = new_status(
        sim,
        repo,
        sha,
        body["state"],
        body.get("context") or "default",
        body.get("description"),
        body.get("target_url"),
        f"{sim.app_slug}[bot]",
    )
    return answer(status, 201)


# The second path is a legacy alias PyGithub's Commit.get_statuses() still calls; absent from the description, so
# the contract test flags clients that use it. Ending the first rule with a slash makes it take `.../statuses/` as
# well, which `commits/<rest:ref>` would otherwise claim.
@bp.get("/repos/<owner>/<repo>/commits/<rest:ref>/statuses/")
@bp.get("/repos/<owner>/<repo>/statuses/<ref>")
@as_installation
def list_statuses(repo: _Repo, ref: str) -> Response:
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(404, "Not Found")
    chunk, headers = paginate(list(reversed(repo.statuses.get(sha, []))))
    return answer(chunk, headers=headers)


# Ending the rule with a slash makes it take `.../status/` as well, which `commits/<rest:ref>` would otherwise claim.
@bp.get("/repos/<owner>/<repo>/commits/<rest:ref>/status/")
@as_installation
def get_combined_status(repo: _Repo, ref: str) -> Response:
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(404, "Not Found")
    latest: dict[str, dict[str, Any]] = {}
    for status in repo.statuses.get(sha, []):
        latest[status["context"]] = status
    states = {s["state"] for s in latest.values()}
    if states & {"error", "failure"}:
        state = "failure"
    elif not states or "pending" in states:
        state = "pending"
    else:
        state = "success"
    statuses = [{k: v for k, v in s.items() if k != "creator"} for s in latest.values()]
    chunk, headers = paginate(statuses)
    sim = simulator()
    return answer(
        {
            "state": state,
            "statuses": chunk,
            "sha": sha,
            "total_count": len(statuses),
            "repository": repo_json(sim, repo),
            "commit_url": f"{sim.api}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{sim.api}/repos/{repo.full_name}/commits/{sha}/status",
        },
        headers=headers,
    )
