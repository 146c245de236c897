"""Pull requests, their commits and their reviews."""

from __future__ import annotations

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import commit_json, pull_json, review_json
from simulators.github.routes.common import answer, as_installation, paginate, simulator
from simulators.github.state import _PullRequest, _Repo

PR_COMMITS_LIMIT = 250

bp = Blueprint("pulls", __name__)


def _pull(repo: _Repo, number: int) -> _PullRequest:
    pr = repo.pulls.get(number)
    if pr is None:
        raise ApiError(404, "Not Found")
    return pr


@bp.get("/repos/<owner>/<repo>/pulls")
@as_installation
def list_pulls(repo: _Repo) -> Response:
    state = request.args.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise ApiError(422, "Validation Failed", [{"resource": "Search", "field": "state", "code": "invalid"}])
    head = request.args.get("head")
    base = request.args.get("base")
    pulls = [
        pr
        for pr in sorted(repo.pulls.values(), key=lambda p: -p.number)
        if (state == "all" or pr.state == state)
        and (head is None or head in (pr.head_ref, f"{repo.owner}:{pr.head_ref}"))
        and (base is None or pr.base_ref == base)
    ]
    chunk, headers = paginate(pulls)
    return answer([pull_json(simulator(), repo, pr) for pr in chunk], headers=headers)


@bp.get("/repos/<owner>/<repo>/pulls/<int:number>")
@as_installation
def get_pull(repo: _Repo, number: int) -> Response:
    return answer(pull_json(simulator(), repo, _pull(repo, number)))


@bp.get("/repos/<owner>/<repo>/pulls/<int:number>/commits")
@as_installation
def list_pull_commits(repo: _Repo, number: int) -> Response:
    pr = _pull(repo, number)
    shas = repo.only_in(repo.head_sha(pr), repo.branches[pr.base_ref])[:PR_COMMITS_LIMIT]
    chunk, headers = paginate(shas)
    return answer([commit_json(simulator(), repo, repo.commits[s]) for s in chunk], headers=headers)


@bp.get("/repos/<owner>/<repo>/pulls/<int:number>/reviews")
@as_installation
def list_reviews(repo: _Repo, number: int) -> Response:
    pr = _pull(repo, number)
    chunk, headers = paginate(list(repo.reviews.get(pr.number, [])))
    return answer([review_json(simulator(), repo, pr, r) for r in chunk], headers=headers)
