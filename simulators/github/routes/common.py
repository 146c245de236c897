"""What every route shares: the simulator behind the app, authentication, JSON answers and pagination."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from flask import Response, current_app, request

from simulators.github.auth import Credential, authenticate
from simulators.github.errors import ApiError, error_body

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

EXTENSION = "github_sim"
MAX_PER_PAGE = 100

View = Callable[..., Response]


def simulator() -> GitHubSimulator:
    """The simulator whose Flask app is answering this request."""
    return cast("GitHubSimulator", current_app.extensions[EXTENSION])


def _authenticated(kind: Credential) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(**params: Any) -> Response:
            # Flask lets HEAD into GET views; this API has always answered it like any method a path does not take.
            if request.method == "HEAD":
                raise ApiError(404, "Not Found")
            sim = simulator()
            installation = authenticate(sim, kind, request.headers.get("Authorization", ""))
            with sim.store.lock:
                if "owner" in params:
                    repo = sim.store.repos.get(f"{params.pop('owner')}/{params.pop('repo')}".lower())
                    # Another installation's repository is as invisible to a token as one that does not exist.
                    if repo is None or (installation is not None and repo.installation_id != installation):
                        raise ApiError(404, "Not Found")
                    params["repo"] = repo
                return view(**params)

        return wrapper

    return decorate


# `/repos/<owner>/<repo>/...` views get the repository itself as `repo`, looked up under the store's lock.
as_app = _authenticated("jwt")  # a JWT signed with the app's private key
as_installation = _authenticated("token")  # an installation token


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with the headers GitHub sends on every REST answer."""
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:20].upper()
    response.headers["X-GitHub-Api-Version-Selected"] = "2022-11-28"
    response.headers["X-RateLimit-Limit"] = "5000"
    response.headers["X-RateLimit-Remaining"] = "4999"
    response.headers["X-RateLimit-Reset"] = str(int(time.time()) + 3600)
    response.headers["X-RateLimit-Resource"] = "core"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_answer(error: ApiError) -> Response:
    body = error_body(error.status, error.message)
    if error.errors:
        body["errors"] = error.errors
    return answer(body, error.status)


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return body


def int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default


def paginate(
    items: list[Any], *, default_per_page: int = 30, cap: int = MAX_PER_PAGE
) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` as `page` and `per_page` ask, and the `Link` header to the others."""
    # Like GitHub, an oversized per_page is clamped rather than refused.
    per_page = (
        max(1, min(int_arg("per_page", default_per_page), cap)) if "per_page" in request.args else default_per_page
    )
    page = max(int_arg("page", 1), 1)
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []
    api = simulator().api

    def link(target: int, rel: str) -> str:
        args = {k: v for k, v in request.args.items() if k not in ("page",)}
        args["page"] = str(target)
        return f'<{api}{request.path}?{urlencode(args)}>; rel="{rel}"'

    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < last:
        links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
    if page > 1:
        links.append(link(1, "first"))
    return chunk, ({"Link": ", ".join(links)} if links else {})
