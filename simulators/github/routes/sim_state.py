"""/_sim/state: what the simulator holds, as JSON, for people and tests (no credentials, never faulted or logged)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from simulators.github.render import check_run_json
from simulators.github.routes.common import answer, simulator

bp = Blueprint("sim_state", __name__)


# Strict: `/_sim/state/` is an unknown path like any other.
@bp.get("/_sim/state", strict_slashes=True)
def sim_state() -> Response:
    return answer(snapshot())


def snapshot() -> dict[str, Any]:
    sim = simulator()
    with sim.store.lock:
        return {
            "repositories": {
                repo.full_name: {
                    "default_branch": repo.default_branch,
                    "installation_id": repo.installation_id,
                    "branches": dict(repo.branches),
                    "commits": len(repo.commits),
                    "files": {branch: sorted(files) for branch, files in repo.files.items()},
                    "pull_requests": [
                        {
                            "number": pr.number,
                            "title": pr.title,
                            "state": pr.state,
                            "head": pr.head_ref,
                            "head_sha": repo.branches[pr.head_ref],
                            "base": pr.base_ref,
                            "author": pr.author,
                            "labels": list(pr.labels),
                            "reviews": [
                                {"id": r.id, "login": r.login, "state": r.state, "commit_id": r.commit_id}
                                for r in repo.reviews.get(pr.number, [])
                            ],
                        }
                        for pr in repo.pulls.values()
                    ],
                    "statuses": {sha: len(items) for sha, items in repo.statuses.items()},
                }
                for repo in sim.store.repos.values()
            },
            "check_runs": [
                {k: v for k, v in check_run_json(sim, run).items() if k not in ("app",)}
                for run in sorted(sim.store.check_runs.values(), key=lambda r: r["id"])
            ],
            "deliveries": [
                {"event": d["event"], "delivery_id": d["delivery_id"], "status": d["status"]} for d in sim.deliveries
            ],
        }
