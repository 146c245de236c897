"""Commits: a branch's history, one commit, the pull requests that hold it, and comparisons."""

from __future__ import annotations

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import HTML, commit_json, pulls_for_sha
from simulators.github.routes.common import answer, as_installation, paginate, simulator
from simulators.github.state import _Repo

COMPARE_UNPAGED_LIMIT = 250

bp = Blueprint("commits", __name__)


@bp.get("/repos/<owner>/<repo>/commits")
@as_installation
def list_commits(repo: _Repo) -> Response:
    ref = request.args.get("sha") or repo.default_branch
    head = repo.resolve(ref)
    if head is None:
        raise ApiError(404, "Not Found")
    history = repo.history(head)
    chunk, headers = paginate(history)
    return answer([commit_json(simulator(), repo, repo.commits[s]) for s in chunk], headers=headers)


@bp.get("/repos/<owner>/<repo>/commits/<rest:ref>")
@as_installation
def get_commit(repo: _Repo, ref: str) -> Response:
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    return answer(commit_json(simulator(), repo, repo.commits[sha], detail=True))


@bp.get("/repos/<owner>/<repo>/commits/<hex:ref>/pulls")
@as_installation
def list_pulls_for_commit(repo: _Repo, ref: str) -> Response:
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    chunk, headers = paginate(pulls_for_sha(simulator(), repo, sha, minimal=False))
    return answer(chunk, headers=headers)


@bp.get("/repos/<owner>/<repo>/compare/<rest:basehead>")
@as_installation
def compare(repo: _Repo, basehead: str) -> Response:
    if "..." not in basehead:
        raise ApiError(404, "Not Found")
    base_ref, head_ref = basehead.split("...", 1)
    base, head = repo.resolve(base_ref), repo.resolve(head_ref)
    if base is None or head is None:
        raise ApiError(404, "Not Found")
    ahead = repo.only_in(head, base)
    behind = repo.only_in(base, head)
    merge_base = repo.merge_base(base, head)
    # Unpaged, GitHub lists the first 250 commits; Link headers lead to the rest.
    chunk, headers = paginate(ahead, default_per_page=COMPARE_UNPAGED_LIMIT)
    if not ahead and not behind:
        status = "identical"
    elif ahead and behind:
        status = "diverged"
    else:
        status = "ahead" if ahead else "behind"
    sim = simulator()
    api = f"{sim.api}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/compare/{basehead}"
    return answer(
        {
            "url": f"{api}/compare/{basehead}",
            "html_url": html,
            "permalink_url": f"{HTML}/{repo.full_name}/compare/{repo.owner}:{base[:7]}...{repo.owner}:{head[:7]}",
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": commit_json(sim, repo, repo.commits[base]),
            "merge_base_commit": commit_json(sim, repo, repo.commits[merge_base]),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [commit_json(sim, repo, repo.commits[s]) for s in chunk],
            "files": [],
        },
        headers=headers,
    )
