"""A GitHub server speaking the real REST API and sending real webhooks, for tests, the demo and benchmarks."""

from simulators.github.auth import generate_app_key
from simulators.github.errors import DOCS, ApiError
from simulators.github.render import APP_EVENTS, APP_PERMISSIONS, HTML, KNOWN_APPS
from simulators.github.simulator import (
    COMPARE_UNPAGED_LIMIT,
    MAX_PER_PAGE,
    PR_COMMITS_LIMIT,
    PROGRESS_COMMENT_LIMIT,
    PROGRESS_REPORTS_LIMIT,
    SUMMARY_LIMIT,
    GitHubSimulator,
)
from simulators.github.state import (
    CHECK_STATUSES,
    CONCLUSIONS,
    DEPLOYMENT_STATES,
    REVIEW_STATES,
    STATUS_STATES,
    Person,
)

__all__ = [
    "APP_EVENTS",
    "APP_PERMISSIONS",
    "CHECK_STATUSES",
    "COMPARE_UNPAGED_LIMIT",
    "CONCLUSIONS",
    "DEPLOYMENT_STATES",
    "DOCS",
    "HTML",
    "KNOWN_APPS",
    "MAX_PER_PAGE",
    "PROGRESS_COMMENT_LIMIT",
    "PROGRESS_REPORTS_LIMIT",
    "PR_COMMITS_LIMIT",
    "REVIEW_STATES",
    "STATUS_STATES",
    "SUMMARY_LIMIT",
    "ApiError",
    "GitHubSimulator",
    "Person",
    "generate_app_key",
]
