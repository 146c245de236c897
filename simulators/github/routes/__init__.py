"""GitHub's REST paths, one Flask blueprint per resource, and GitHub's 404 for every path they do not take."""

from __future__ import annotations

from typing import NoReturn

from flask import Flask
from werkzeug.routing import BaseConverter, PathConverter

from simulators.github.errors import ApiError
from simulators.github.routes import (
    actions,
    app,
    checks,
    commits,
    contents,
    deployments,
    oauth,
    pulls,
    sim_state,
    statuses,
)
from simulators.github.routes.common import error_answer

BLUEPRINTS = (app.bp, pulls.bp, commits.bp, checks.bp, statuses.bp, contents.bp, deployments.bp, actions.bp, oauth.bp)
# The methods the catch-all takes: Flask adds HEAD and OPTIONS, and answers 405 to any other.
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


class RestConverter(PathConverter):
    """The rest of the path, slashes included, even a leading one (Werkzeug's `path` refuses that)."""

    regex = ".+"
    part_isolating = False  # Werkzeug would guess True, as the pattern has no slash in it


class HexConverter(BaseConverter):
    """One path segment of hexadecimal digits: a commit SHA or a prefix of one."""

    regex = "[0-9a-fA-F]+"


def register(flask_app: Flask) -> None:
    flask_app.url_map.converters["rest"] = RestConverter
    flask_app.url_map.converters["hex"] = HexConverter
    # Every API path also answers with one trailing slash; /_sim/state and the catch-all opt out.
    flask_app.url_map.strict_slashes = False
    for blueprint in BLUEPRINTS:
        flask_app.register_blueprint(blueprint)
    flask_app.register_blueprint(sim_state.bp)
    flask_app.register_error_handler(ApiError, error_answer)
    # GitHub answers 404 for unknown paths and for methods a path does not take. Matched last, the catch-all also
    # makes OPTIONS list, and a 405 allow, the same methods on every path.
    flask_app.add_url_rule("/", "not_found", not_found, defaults={"path": ""}, methods=METHODS, strict_slashes=True)
    flask_app.add_url_rule("/<path:path>", "not_found", not_found, methods=METHODS, strict_slashes=True)


def not_found(path: str) -> NoReturn:
    raise ApiError(404, "Not Found")
