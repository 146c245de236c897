"""The GitHub adapter: the only code that imports PyGithub. Gates see plain values and `GitHubError`."""

from gating.github_api import reads, writes
from gating.github_api.app import GitHubApp, Installation, Repo, TokenStore
from gating.github_api.errors import GitHubError, GitHubNotFound, GitHubUnavailable, InstallationGone

__all__ = [
    "GitHubApp",
    "GitHubError",
    "GitHubNotFound",
    "GitHubUnavailable",
    "Installation",
    "InstallationGone",
    "Repo",
    "TokenStore",
    "reads",
    "writes",
]
