"""The simulated GitHub's data model: repositories, their commit graph, pull requests, reviews, tokens and ids."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
CHECK_STATUSES = ("queued", "in_progress", "completed")  # waiting, requested, pending: GitHub Actions only
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
STATUS_STATES = ("error", "failure", "pending", "success")
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
# Commits never change once made, so what a SHA reaches never changes either: caches only need a bound.
CACHE_LIMIT = 512


@dataclass(frozen=True)
class Person:
    """A commit author or committer; `login` is None when the e-mail belongs to no GitHub user."""

    name: str
    email: str
    login: str | None = None


# The committer of the commits GitHub makes itself (merges, squashes, rebases, web edits).
WEB_FLOW = Person(name="GitHub", email="noreply@github.com", login="web-flow")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Commit:
    sha: str
    message: str
    author: Person
    committer: Person
    parents: list[str]
    seq: int
    date: datetime
    tree: str
    verified: bool = False  # GitHub verified its signature (GitHub signs the commits it makes when merging)


@dataclass
class _PullRequest:
    number: int
    id: int
    title: str
    body: str
    author: str
    head_ref: str
    base_ref: str
    labels: list[str]
    draft: bool
    state: str = "open"
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    introduced: list[str] = field(default_factory=list)  # the commits the merge put on the base branch
    queued: list[str] = field(default_factory=list)  # merge queue commits that merge this PR's head


@dataclass
class _Review:
    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: datetime
    body: str = ""


@dataclass
class _Token:
    installation_id: int
    expires_at: datetime
    permissions: dict[str, str]
    revoked: bool = False


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    installation_id: int
    private: bool
    created_at: datetime
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    pulls: dict[int, _PullRequest] = field(default_factory=dict)
    reviews: dict[int, list[_Review]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_suites: dict[str, int] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    _ancestry: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _ranges: dict[tuple[str, str], list[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def head_sha(self, pr: _PullRequest) -> str:
        return self.branches[pr.head_ref]

    def ancestors(self, sha: str) -> frozenset[str]:
        """Every commit `sha` reaches, itself included."""
        cached = self._ancestry.get(sha)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = [sha]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.commits[current].parents)
        result = frozenset(seen)
        if len(self._ancestry) > CACHE_LIMIT:
            self._ancestry.clear()
        self._ancestry[sha] = result
        return result

    def only_in(self, head: str, base: str) -> list[str]:
        """Commits reachable from head and not from base, oldest first (creation order is topological)."""
        cached = self._ranges.get((head, base))
        if cached is None:
            reachable = self.ancestors(head) - self.ancestors(base)
            cached = sorted(reachable, key=lambda s: self.commits[s].seq)
            self._remember((head, base), cached)
        return cached

    def history(self, head: str) -> list[str]:
        """Every commit head reaches, newest first."""
        cached = self._ranges.get((head, ""))
        if cached is None:
            cached = sorted(self.ancestors(head), key=lambda s: -self.commits[s].seq)
            self._remember((head, ""), cached)
        return cached

    def merge_base(self, base: str, head: str) -> str:
        key = (head, "merge-base:" + base)
        cached = self._ranges.get(key)
        if cached is None:
            common = self.ancestors(head) & self.ancestors(base)
            cached = [max(common, key=lambda s: self.commits[s].seq) if common else base]
            self._ranges[key] = cached
        return cached[0]

    def _remember(self, key: tuple[str, str], shas: list[str]) -> None:
        if len(self._ranges) > CACHE_LIMIT:
            self._ranges.clear()
        self._ranges[key] = shas

    def resolve(self, ref: str) -> str | None:
        """The commit a branch name, `refs/heads/` name, full SHA or unambiguous SHA prefix names."""
        for prefix in ("refs/heads/", "heads/"):
            if ref.startswith(prefix) and ref[len(prefix) :] in self.branches:
                return self.branches[ref[len(prefix) :]]
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.commits:
            return ref
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            matches = [sha for sha in self.commits if sha.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        return None

    def branch_for(self, ref: str) -> str | None:
        """Files are kept per branch: a SHA reads the branch whose history holds it, default first."""
        name = ref.removeprefix("refs/heads/")
        if name in self.branches:
            return name
        sha = self.resolve(ref)
        if sha is None:
            return None
        ordered = [self.default_branch, *sorted(b for b in self.branches if b != self.default_branch)]
        for branch in ordered:
            if sha in self.ancestors(self.branches[branch]):
                return branch
        return None


class Store:
    """Everything the simulated GitHub holds, behind one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[str, _Repo] = {}
        self.tokens: dict[str, _Token] = {}  # every token ever issued, revoked ones too
        self.token_lifetime = timedelta(hours=1)  # GitHub's; a test may shorten it
        self.check_runs: dict[int, dict[str, Any]] = {}
        self._users: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._seq = 0

    def next_id(self, kind: str, start: int) -> int:
        with self.lock:
            value = self._ids.get(kind, start) + 1
            self._ids[kind] = value
            return value

    def user_id(self, login: str) -> int:
        with self.lock:
            if login not in self._users:
                self._users[login] = 583_000 + len(self._users) + 1
            return self._users[login]

    def repo(self, full_name: str) -> _Repo:
        repo = self.repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name!r}; add it with add_repository()")
        return repo

    def make_commit(
        self,
        repo: _Repo,
        message: str,
        author: Person,
        committer: Person,
        parents: list[str],
        *,
        verified: bool = False,
    ) -> str:
        self._seq += 1
        for parent in parents:
            if parent not in repo.commits:
                raise KeyError(f"unknown parent {parent} in {repo.full_name}")
        tree = hashlib.sha1(f"tree {repo.full_name} {self._seq}".encode()).hexdigest()
        content = (
            f"tree {tree}\n"
            + "".join(f"parent {p}\n" for p in parents)
            + f"author {author.name} <{author.email}> {self._seq}\ncommitter {committer.name} <{committer.email}>\n\n"
            + message
        )
        sha = hashlib.sha1(content.encode("utf-8", "surrogatepass")).hexdigest()  # git keeps any bytes
        repo.commits[sha] = _Commit(sha, message, author, committer, list(parents), self._seq, now(), tree, verified)
        return sha

    def check_suite_id(self, repo: _Repo, head_sha: str, app_slug: str | None = None) -> int:
        """A check suite belongs to one app and one commit; `app_slug` None is our app's."""
        key = head_sha if app_slug is None else f"{head_sha}:{app_slug}"
        if key not in repo.check_suites:
            repo.check_suites[key] = self.next_id("suite", 5_000_000_000)
        return repo.check_suites[key]

    def environment(self, repo: _Repo, name: str) -> dict[str, Any]:
        """The environment `name`, created (without our protection rule) on first use."""
        env = repo.environments.get(name)
        if env is None:
            env = {
                "id": self.next_id("environment", 160_000_000),
                "rule_id": self.next_id("protection_rule", 3_000),
                "name": name,
                "protection_rule_app": False,
                "created": now(),
            }
            repo.environments[name] = env
        return env

    def new_workflow_run(self, repo: _Repo, head_sha: str, head_branch: str, name: str, event: str, actor: str) -> int:
        if head_sha not in repo.commits:
            raise KeyError(f"unknown commit {head_sha} in {repo.full_name}")
        run_id = self.next_id("workflow_run", 9_000_000_000)
        workflow_id = 100_000_000 + int(hashlib.sha1(f"{repo.full_name}:{name}".encode()).hexdigest()[:6], 16)
        number = 1 + sum(1 for r in repo.workflow_runs.values() if r["name"] == name)
        repo.workflow_runs[run_id] = {
            "id": run_id,
            "name": name,
            "workflow_id": workflow_id,
            "number": number,
            "head_sha": head_sha,
            "head_branch": head_branch.removeprefix("refs/heads/"),
            "event": event,
            "actor": actor,
            "created": now(),
            "suite_id": self.next_id("suite", 5_000_000_000),
            "attempt": 1,  # "Re-run jobs" keeps the run id and counts attempts
            "progress": {},  # environment name -> progress reports accepted
            "decided": {},  # environment name -> approved | rejected
        }
        return run_id

    def new_deployment_status(self, deployment: dict[str, Any], body: dict[str, Any], creator: str) -> dict[str, Any]:
        previous = deployment["statuses"][-1] if deployment["statuses"] else None
        log_url = body.get("log_url") or body.get("target_url") or ""
        status = {
            "id": self.next_id("deployment_status", 2_500_000_000),
            "state": body["state"],
            "description": body.get("description") or "",
            "environment": body.get("environment") or (previous or deployment)["environment"],
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": body.get("environment_url") or "",
            "creator": creator,
            "created": now(),
        }
        deployment["statuses"].append(status)
        deployment["updated"] = status["created"]
        return status


@dataclass
class OAuthClient:
    """The app's OAuth client (its client id, secret and callback URL) and what the web flow has handed out."""

    client_id: str
    client_secret: str
    callback_url: str
    signed_in_as: str = "octocat"  # who the authorize page approves as
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)  # user token -> login
    readers: dict[str, set[str]] = field(default_factory=dict)  # login -> repositories (lowercased) they can read
    names: dict[str, str] = field(default_factory=dict)  # login -> display name
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
