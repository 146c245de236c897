"""Repositories and the files on their branches."""

from __future__ import annotations

import base64
import hashlib

from flask import Blueprint, Response, request

from simulators.github.errors import ApiError
from simulators.github.render import HTML, repo_json
from simulators.github.routes.common import answer, as_installation, simulator
from simulators.github.state import _Repo

bp = Blueprint("contents", __name__)


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@bp.get("/repos/<owner>/<repo>")
@as_installation
def get_repo(repo: _Repo) -> Response:
    return answer({**repo_json(simulator(), repo), "network_count": 0, "subscribers_count": 0})


@bp.get("/repos/<owner>/<repo>/contents/<rest:path>")
@as_installation
def get_contents(repo: _Repo, path: str) -> Response:
    ref = request.args.get("ref") or repo.default_branch
    branch = repo.branch_for(ref)
    path = path.strip("/")
    content = repo.files.get(branch, {}).get(path) if branch else None
    if content is None:
        raise ApiError(404, "Not Found")
    raw = content.encode()
    blob = _git_blob_sha(raw)
    encoded = base64.b64encode(raw).decode()
    wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n"
    api = f"{simulator().api}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/blob/{branch}/{path}"
    self_url = f"{api}/contents/{path}?ref={ref}"
    return answer(
        {
            "type": "file",
            "encoding": "base64",
            "size": len(raw),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": wrapped,
            "sha": blob,
            "url": self_url,
            "git_url": f"{api}/git/blobs/{blob}",
            "html_url": html,
            "download_url": f"https://raw.githubusercontent.com/{repo.full_name}/{branch}/{path}",
            "_links": {"self": self_url, "git": f"{api}/git/blobs/{blob}", "html": html},
        }
    )
