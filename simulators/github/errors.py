"""GitHub's error answers: the exception a handler raises, and the JSON body it becomes."""

from __future__ import annotations

from typing import Any

DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    """Answered with GitHub's error shape."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    default = {
        401: "Bad credentials",
        403: "Resource not accessible by integration",
        404: "Not Found",
        409: "Conflict",
        422: "Validation Failed",
        429: "API rate limit exceeded",
        500: "Server Error",
        502: "Server Error",
        503: "Service Unavailable",
    }
    return {"message": message or default.get(status, "Error"), "documentation_url": DOCS, "status": str(status)}
