"""GitHub's error answers: the exception a handler raises, and the JSON body it becomes."""

from __future__ import annotations

from typing import Any

DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)


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


def secondary_rate_limit_body(request_id: str = "C0DE:1234:5678:9ABC:DEF0") -> dict[str, Any]:
    """The body GitHub answers a secondary rate limit with (403 or 429, with a retry-after header)."""
    return {
        "message": SECONDARY_RATE_LIMIT_MESSAGE.format(request_id=request_id),
        "documentation_url": SECONDARY_RATE_LIMIT_DOCS,
    }
