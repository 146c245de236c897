"""Check runs: created and updated by the app, listed per commit."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import HTML, app_json_for, check_run_json
from simulators.github.routes.common import answer, as_installation, json_body, paginate, simulator
from simulators.github.state import CHECK_STATUSES, CONCLUSIONS, _Repo, iso, now

SUMMARY_LIMIT = 65_535

bp = Blueprint("checks", __name__)


def _check_fields(body: dict[str, Any], run: dict[str, Any]) -> None:
    status = body.get("status", run.get("status"))
    if status not in CHECK_STATUSES:
        raise ApiError(422, "Invalid request.\n\nstatus is not included in the list.")
    conclusion = body.get("conclusion")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise ApiError(422, f"Invalid request.\n\n{conclusion!r} is not a member of conclusion.")
    if status == "completed" and conclusion is None and run.get("conclusion") is None:
        raise ApiError(422, 'Invalid request.\n\nNo subschema in "anyOf" matched.\n"conclusion" wasn\'t supplied.')
    output = body.get("output")
    if output is not None:
        if not isinstance(output, dict) or "title" not in output or "summary" not in output:
            raise ApiError(422, 'Invalid request.\n\n"title", "summary" weren\'t supplied.')
        for key in ("summary", "text"):
            value = output.get(key)
            if value is not None and len(value) > SUMMARY_LIMIT:
                raise ApiError(
                    422,
                    f"Invalid request.\n\nOnly 65535 characters are allowed; {len(value)} were supplied.",
                    [{"resource": "CheckRun", "field": f"output.{key}", "code": "too_long"}],
                )
        if len(output.get("annotations") or []) > 50:
            raise ApiError(422, "Invalid request.\n\nAt most 50 annotations are allowed per request.")


def _apply_check_fields(run: dict[str, Any], body: dict[str, Any]) -> None:
    for key in ("name", "details_url", "external_id"):
        if key in body:
            run[key] = body[key]
    if "started_at" in body:
        run["started_at"] = body["started_at"]
    if "status" in body:
        run["status"] = body["status"]
    if body.get("conclusion") is not None:
        run["conclusion"] = body["conclusion"]
        run["status"] = "completed"
    if run["status"] == "completed":
        run["completed_at"] = body.get("completed_at") or run.get("completed_at") or iso(now())
    if body.get("output") is not None:
        output = body["output"]
        run["output"] = {k: output.get(k) for k in ("title", "summary", "text")}
        run["annotations_count"] += len(output.get("annotations") or [])


def _run(repo: _Repo, check_run_id: int) -> dict[str, Any]:
    run = simulator().store.check_runs.get(check_run_id)
    if run is None or run["repo"] != repo.full_name.lower():
        raise ApiError(404, "Not Found")
    return run


@bp.post("/repos/<owner>/<repo>/check-runs")
@as_installation
def create_check_run(repo: _Repo) -> Response:
    sim = simulator()
    body = json_body()
    missing = [key for key in ("name", "head_sha") if not body.get(key)]
    if missing:
        raise ApiError(422, "Invalid request.\n\n" + ", ".join(f'"{k}"' for k in missing) + " wasn't supplied.")
    head_sha = body["head_sha"]
    if head_sha not in repo.commits:
        raise ApiError(422, f"No commit found for SHA: {head_sha}")
    run: dict[str, Any] = {
        "id": sim.store.next_id("check_run", 10_000_000_000),
        "repo": repo.full_name.lower(),
        "head_sha": head_sha,
        "name": body["name"],
        "external_id": body.get("external_id") or "",
        "details_url": body.get("details_url") or f"{HTML}/{repo.full_name}/runs",
        "status": "queued",
        "conclusion": None,
        "started_at": iso(now()),
        "completed_at": None,
        "output": {"title": None, "summary": None, "text": None},
        "annotations_count": 0,
        "suite_id": sim.store.check_suite_id(repo, head_sha),
        "created": now(),
    }
    _check_fields(body, run)
    _apply_check_fields(run, body)
    sim.store.check_runs[run["id"]] = run
    return answer(check_run_json(sim, run), 201)


@bp.get("/repos/<owner>/<repo>/check-runs/<int:check_run_id>")
@as_installation
def get_check_run(repo: _Repo, check_run_id: int) -> Response:
    return answer(check_run_json(simulator(), _run(repo, check_run_id)))


@bp.patch("/repos/<owner>/<repo>/check-runs/<int:check_run_id>")
@as_installation
def update_check_run(repo: _Repo, check_run_id: int) -> Response:
    run = _run(repo, check_run_id)
    body = json_body()
    _check_fields(body, run)
    _apply_check_fields(run, body)
    return answer(check_run_json(simulator(), run))


# Ending the rule with a slash makes it take `.../check-runs/` too, which `commits/<rest:ref>` would otherwise claim.
@bp.get("/repos/<owner>/<repo>/commits/<rest:ref>/check-runs/")
@as_installation
def list_check_runs_for_ref(repo: _Repo, ref: str) -> Response:
    sim = simulator()
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    name = request.args.get("check_name")
    status = request.args.get("status")
    app_id = request.args.get("app_id")
    runs = sorted(
        (r for r in sim.store.check_runs.values() if r["repo"] == repo.full_name.lower() and r["head_sha"] == sha),
        key=lambda r: -r["id"],
    )
    runs = [r for r in runs if (name is None or r["name"] == name) and (status is None or r["status"] == status)]
    if app_id is not None:
        runs = [r for r in runs if str(app_json_for(sim, r.get("app_slug", sim.app_slug))["id"]) == app_id]
    if request.args.get("filter", "latest") == "latest":
        seen: set[str] = set()
        latest = []
        for run in runs:
            if run["name"] not in seen:
                seen.add(run["name"])
                latest.append(run)
        runs = latest
    chunk, headers = paginate(runs)
    return answer({"total_count": len(runs), "check_runs": [check_run_json(sim, r) for r in chunk]}, headers=headers)
