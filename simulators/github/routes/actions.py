"""GitHub Actions: workflow runs, and the callback through which our app decides a run's deployments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import HTML, node_id, pulls_for_sha, repo_json, simple_commit, user_json
from simulators.github.routes.common import answer, as_installation, json_body, simulator
from simulators.github.state import _Repo, iso

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

PROGRESS_REPORTS_LIMIT = 10  # per deployment (a run and an environment), like GitHub
PROGRESS_COMMENT_LIMIT = 1_024

bp = Blueprint("actions", __name__)


def run_state(repo: _Repo, run: dict[str, Any]) -> tuple[str, str | None]:
    """Waiting while one of our gates is undecided; failed when one rejected; in progress otherwise."""
    gated = {
        d["environment"]
        for d in repo.deployments.values()
        if d["run_id"] == run["id"] and repo.environments[d["environment"]]["protection_rule_app"]
    }
    if "rejected" in run["decided"].values():
        return "completed", "failure"
    if gated - set(run["decided"]):
        return "waiting", None
    return "in_progress", None


def workflow_run_json(
    sim: GitHubSimulator, repo: _Repo, run: dict[str, Any], *, with_pulls: bool = True
) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    run_id = run["id"]
    commit = repo.commits[run["head_sha"]]
    repository = repo_json(sim, repo)
    actor = user_json(sim, run["actor"])
    status, conclusion = run_state(repo, run)
    return {
        "id": run_id,
        "name": run["name"],
        "node_id": node_id("WorkflowRun", run_id),
        "check_suite_id": run["suite_id"],
        "check_suite_node_id": node_id("CheckSuite", run["suite_id"]),
        "head_branch": run["head_branch"],
        "head_sha": run["head_sha"],
        "path": f".github/workflows/{run['name']}.yml",
        "display_title": commit.message.split("\n", 1)[0],
        "run_number": run["number"],
        "run_attempt": run["attempt"],
        "referenced_workflows": [],
        "event": run["event"],
        "status": status,
        "conclusion": conclusion,
        "workflow_id": run["workflow_id"],
        "url": f"{api}/actions/runs/{run_id}",
        "html_url": f"{HTML}/{repo.full_name}/actions/runs/{run_id}",
        "pull_requests": pulls_for_sha(sim, repo, run["head_sha"], minimal=True) if with_pulls else [],
        "created_at": iso(run["created"]),
        "updated_at": iso(run["created"]),
        "actor": actor,
        "triggering_actor": actor,
        "run_started_at": iso(run["created"]),
        "jobs_url": f"{api}/actions/runs/{run_id}/jobs",
        "logs_url": f"{api}/actions/runs/{run_id}/logs",
        "check_suite_url": f"{api}/check-suites/{run['suite_id']}",
        "artifacts_url": f"{api}/actions/runs/{run_id}/artifacts",
        "cancel_url": f"{api}/actions/runs/{run_id}/cancel",
        "rerun_url": f"{api}/actions/runs/{run_id}/rerun",
        "previous_attempt_url": f"{api}/actions/runs/{run_id}/attempts/{run['attempt'] - 1}"
        if run["attempt"] > 1
        else None,
        "workflow_url": f"{api}/actions/workflows/{run['workflow_id']}",
        "head_commit": simple_commit(commit),
        "repository": repository,
        "head_repository": repository,
        "head_repository_id": repo.id,
    }


def _workflow_run(repo: _Repo, run_id: int) -> dict[str, Any]:
    run = repo.workflow_runs.get(run_id)
    if run is None:
        raise ApiError(404, "Not Found")
    return run


@bp.get("/repos/<owner>/<repo>/actions/runs/<int:run_id>")
@as_installation
def get_workflow_run(repo: _Repo, run_id: int) -> Response:
    run = _workflow_run(repo, run_id)
    exclude = request.args.get("exclude_pull_requests") == "true"
    return answer(workflow_run_json(simulator(), repo, run, with_pulls=not exclude))


@bp.post("/repos/<owner>/<repo>/actions/runs/<int:run_id>/deployment_protection_rule")
@as_installation
def review_custom_deployment_protection_rule(repo: _Repo, run_id: int) -> Response:
    run = _workflow_run(repo, run_id)
    body = json_body()
    name = body.get("environment_name")
    state = body.get("state")
    comment = body.get("comment")
    if not isinstance(name, str) or not name:
        raise ApiError(422, 'Invalid request.\n\n"environment_name" wasn\'t supplied.')
    if state is not None and state not in ("approved", "rejected"):
        raise ApiError(422, f"Invalid request.\n\n{state!r} is not a member of state.")
    if state is None and not comment:
        raise ApiError(422, 'Invalid request.\n\n"comment" wasn\'t supplied.')
    if comment is not None and not isinstance(comment, str):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/comment', it is not a string.")
    if comment is not None and len(comment) > PROGRESS_COMMENT_LIMIT:
        raise ApiError(
            422,
            f"Invalid request.\n\nOnly {PROGRESS_COMMENT_LIMIT} characters are allowed; {len(comment)} were supplied.",
            [{"resource": "DeploymentProtectionRule", "field": "comment", "code": "too_long"}],
        )
    env = repo.environments.get(name)
    waiting = (
        env is not None
        and env["protection_rule_app"]
        and name not in run["decided"]
        and any(d["run_id"] == run["id"] and d["environment"] == name for d in repo.deployments.values())
    )
    if not waiting:
        raise ApiError(422, f"No pending deployment protection rule for environment {name!r} on this run.")
    if state is None:
        reports = run["progress"].get(name, 0)
        if reports >= PROGRESS_REPORTS_LIMIT:
            raise ApiError(
                422, f"Only {PROGRESS_REPORTS_LIMIT} status reports are allowed per deployment protection rule."
            )
        run["progress"][name] = reports + 1
    else:
        run["decided"][name] = state
    repo.answers.append({"run_id": run["id"], "environment_name": name, "state": state, "comment": comment})
    return Response(status=204)
