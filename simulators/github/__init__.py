"""A GitHub server speaking the real REST API and sending real webhooks, for tests, the demo and benchmarks."""

from simulators.github.auth import generate_app_key
from simulators.github.errors import DOCS, ApiError
from simulators.github.render import APP_EVENTS, APP_PERMISSIONS, HTML, KNOWN_APPS
from simulators.github.routes.actions import PROGRESS_COMMENT_LIMIT, PROGRESS_REPORTS_LIMIT
from simulators.github.routes.checks import SUMMARY_LIMIT
from simulators.github.routes.commits import COMPARE_UNPAGED_LIMIT
from simulators.github.routes.common import MAX_PER_PAGE
from simulators.github.routes.pulls import PR_COMMITS_LIMIT
from simulators.github.simulator import GitHubSimulator
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
