"""Deployments, their statuses, and environments with the protection rules they ask our app about."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import HTML, deployment_json, node_id, user_json
from simulators.github.routes.common import answer, as_installation, json_body, paginate, simulator
from simulators.github.state import DEPLOYMENT_STATES, _Repo, iso

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

bp = Blueprint("deployments", __name__)


def deployment_status_json(
    sim: GitHubSimulator, repo: _Repo, deployment: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    deployment_url = f"{api}/deployments/{deployment['id']}"
    return {
        "url": f"{deployment_url}/statuses/{status['id']}",
        "id": status["id"],
        "node_id": node_id("DeploymentStatus", status["id"]),
        "state": status["state"],
        "creator": user_json(sim, status["creator"]),
        "description": status["description"],
        "environment": status["environment"],
        "target_url": status["target_url"],
        "created_at": iso(status["created"]),
        "updated_at": iso(status["created"]),
        "deployment_url": deployment_url,
        "repository_url": api,
        "environment_url": status["environment_url"],
        "log_url": status["log_url"],
        "performed_via_github_app": None,
    }


def environment_json(sim: GitHubSimulator, repo: _Repo, env: dict[str, Any]) -> dict[str, Any]:
    name = env["name"]
    return {
        "id": env["id"],
        "node_id": node_id("Environment", env["id"]),
        "name": name,
        "url": f"{sim.api}/repos/{repo.full_name}/environments/{name}",
        "html_url": f"{HTML}/{repo.full_name}/deployments/activity_log?environments_filter={name}",
        "created_at": iso(env["created"]),
        "updated_at": iso(env["created"]),
        # Built-in rules only: custom (app) rules are listed at .../deployment_protection_rules.
        "protection_rules": [],
        "deployment_branch_policy": None,
    }


def _deployment(repo: _Repo, deployment_id: int) -> dict[str, Any]:
    deployment = repo.deployments.get(deployment_id)
    if deployment is None:
        raise ApiError(404, "Not Found")
    return deployment


@bp.get("/repos/<owner>/<repo>/deployments")
@as_installation
def list_deployments(repo: _Repo) -> Response:
    filters = {key: request.args.get(key) for key in ("sha", "ref", "environment")}
    task = request.args.get("task")
    found = [
        d
        for d in sorted(repo.deployments.values(), key=lambda d: -d["id"])
        if all(value is None or d[key] == value for key, value in filters.items())
        and (task is None or task == "deploy")
    ]
    chunk, headers = paginate(found)
    return answer([deployment_json(simulator(), repo, d) for d in chunk], headers=headers)


@bp.get("/repos/<owner>/<repo>/deployments/<int:deployment_id>")
@as_installation
def get_deployment(repo: _Repo, deployment_id: int) -> Response:
    return answer(deployment_json(simulator(), repo, _deployment(repo, deployment_id)))


@bp.get("/repos/<owner>/<repo>/deployments/<int:deployment_id>/statuses")
@as_installation
def list_deployment_statuses(repo: _Repo, deployment_id: int) -> Response:
    deployment = _deployment(repo, deployment_id)
    chunk, headers = paginate(list(reversed(deployment["statuses"])))
    return answer([deployment_status_json(simulator(), repo, deployment, s) for s in chunk], headers=headers)


@bp.get("/repos/<owner>/<repo>/deployments/<int:deployment_id>/statuses/<int:status_id>")
@as_installation
def get_deployment_status(repo: _Repo, deployment_id: int, status_id: int) -> Response:
    deployment = _deployment(repo, deployment_id)
    status = next((s for s in deployment["statuses"] if s["id"] == status_id), None)
    if status is None:
        raise ApiError(404, "Not Found")
    return answer(deployment_status_json(simulator(), repo, deployment, status))


@bp.post("/repos/<owner>/<repo>/deployments/<int:deployment_id>/statuses")
@as_installation
def create_deployment_status(repo: _Repo, deployment_id: int) -> Response:
    sim = simulator()
    deployment = _deployment(repo, deployment_id)
    body = json_body()
    if body.get("state") not in DEPLOYMENT_STATES:
        raise ApiError(
            422, "Validation Failed", [{"resource": "DeploymentStatus", "field": "state", "code": "invalid"}]
        )
    if len(body.get("description") or "") > 140:
        raise ApiError(
            422, "Validation Failed", [{"resource": "DeploymentStatus", "field": "description", "code": "too_long"}]
        )
    status = sim.store.new_deployment_status(deployment, body, f"{sim.app_slug}[bot]")
    return answer(deployment_status_json(sim, repo, deployment, status), 201)


@bp.get("/repos/<owner>/<repo>/environments/<name>")
@as_installation
def get_environment(repo: _Repo, name: str) -> Response:
    env = repo.environments.get(name)
    if env is None:
        raise ApiError(404, "Not Found")
    return answer(environment_json(simulator(), repo, env))


@bp.get("/repos/<owner>/<repo>/environments/<name>/deployment_protection_rules")
@as_installation
def list_deployment_protection_rules(repo: _Repo, name: str) -> Response:
    sim = simulator()
    env = repo.environments.get(name)
    if env is None:
        raise ApiError(404, "Not Found")
    rules = []
    if env["protection_rule_app"]:
        rules.append(
            {
                "id": env["rule_id"],
                "node_id": node_id("DeploymentProtectionRule", env["rule_id"]),
                "enabled": True,
                "app": {
                    "id": sim.app_id,
                    "node_id": node_id("Integration", sim.app_id),
                    "slug": sim.app_slug,
                    "integration_url": f"{sim.api}/apps/{sim.app_slug}",
                },
            }
        )
    return answer({"total_count": len(rules), "custom_deployment_protection_rules": rules})
