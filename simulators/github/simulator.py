"""A GitHub server speaking the real REST API and sending real webhooks, for tests, the demo and benchmarks."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, request

from simulators.http import Faults, RecordingMiddleware, ServerHandle, serve

HTML = "https://github.com"
DOCS = "https://docs.github.com/rest"
SUMMARY_LIMIT = 65_535
PR_COMMITS_LIMIT = 250
COMPARE_UNPAGED_LIMIT = 250
MAX_PER_PAGE = 100
DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
PROGRESS_REPORTS_LIMIT = 10  # per deployment (a run and an environment), like GitHub
PROGRESS_COMMENT_LIMIT = 1_024
# Well-known apps other than ours, by slug: (id, owner, name).
KNOWN_APPS = {"github-actions": (15368, "github", "GitHub Actions")}
CHECK_STATUSES = ("queued", "in_progress", "completed")  # waiting, requested, pending: GitHub Actions only
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
STATUS_STATES = ("error", "failure", "pending", "success")
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")
APP_PERMISSIONS = {
    "actions": "read",
    "checks": "write",
    "contents": "read",
    "deployments": "write",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "write",
}
# The app also subscribes to `deployment_protection_rule`, but GitHub's webhook description has no such member in
# the `app.events` enum of check_suite payloads, so it is left out here.
APP_EVENTS = ["check_run", "check_suite", "pull_request", "pull_request_review"]


@dataclass(frozen=True)
class Person:
    """A commit author or committer; `login` is None when the e-mail belongs to no GitHub user."""

    name: str
    email: str
    login: str | None = None


def generate_app_key() -> tuple[str, str]:
    """A fresh RSA 2048 key pair for a GitHub App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC)


def _node_id(kind: str, ident: int | str) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class ApiError(Exception):
    """Answered with GitHub's error shape."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
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
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    closed_at: datetime | None = None


@dataclass
class _Review:
    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: datetime
    body: str = ""


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

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Token:
    installation_id: int
    expires_at: datetime
    permissions: dict[str, str]
    revoked: bool = False


_Handler = Callable[..., Any]


class GitHubSimulator:
    """Repositories, commits, pull requests, reviews, check runs and statuses behind GitHub's REST paths."""

    def __init__(
        self, app_id: int, app_public_key_pem: str, webhook_secret: str, webhook_url: str | None = None
    ) -> None:
        self.app_id = app_id
        self.app_public_key_pem = app_public_key_pem
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.hook_id = 400_000 + app_id
        self.app_slug = "countersign"
        self.faults = Faults()
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._tokens: dict[str, _Token] = {}
        self._check_runs: dict[int, dict[str, Any]] = {}
        self._users: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._seq = 0
        # Commits never change once made, so what a SHA reaches never changes either: cache it (bounded).
        self._ancestry: dict[tuple[str, str], frozenset[str]] = {}
        self._ranges: dict[tuple[str, str, str], list[str]] = {}
        self._handle: ServerHandle | None = None
        self.url: str | None = None
        self.deliveries: list[dict[str, Any]] = []
        self.flask_app = self._build_app()
        self.recorder = RecordingMiddleware(self.flask_app.wsgi_app, self.faults, _error_body)
        self.wsgi = _buffer_body(self.recorder)
        self._routes = self._route_table()

    # ------------------------------------------------------------------ server

    def start(self, port: int = 0) -> str:
        self._handle = serve(self.wsgi, port)
        self.url = self._handle.url
        return self.url

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    @property
    def api(self) -> str:
        # URLs in answers point back at this server: PyGithub refuses to follow links to other hosts.
        return self.url or "https://api.github.com"

    # ------------------------------------------------------------------ ids

    def _next_id(self, kind: str, start: int) -> int:
        with self._lock:
            value = self._ids.get(kind, start) + 1
            self._ids[kind] = value
            return value

    def _user_id(self, login: str) -> int:
        with self._lock:
            if login not in self._users:
                self._users[login] = 583_000 + len(self._users) + 1
            return self._users[login]

    def _repo(self, full_name: str) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name!r}; add it with add_repository()")
        return repo

    # ------------------------------------------------------------------ state API

    def add_repository(
        self, full_name: str, *, default_branch: str = "main", installation_id: int = 1, private: bool = False
    ) -> str:
        owner, name = full_name.split("/", 1)
        with self._lock:
            repo = _Repo(
                id=self._next_id("repo", 700_000_000),
                owner=owner,
                name=name,
                default_branch=default_branch,
                installation_id=installation_id,
                private=private,
                created_at=_now(),
            )
            self._repos[full_name.lower()] = repo
            repo.files[default_branch] = {}
            ghost = Person(name=owner, email=f"{owner}@users.noreply.github.com", login=owner)
            sha = self._make_commit(repo, "Initial commit", ghost, ghost, [])
            repo.branches[default_branch] = sha
            return sha

    def put_file(self, full_name: str, path: str, content: str, branch: str | None = None) -> None:
        with self._lock:
            repo = self._repo(full_name)
            branch = branch or repo.default_branch
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[repo.default_branch]
            if branch not in repo.files:
                repo.files[branch] = dict(repo.files.get(repo.default_branch, {}))
            repo.files[branch][path.strip("/")] = content

    def _make_commit(self, repo: _Repo, message: str, author: Person, committer: Person, parents: list[str]) -> str:
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
        sha = hashlib.sha1(content.encode()).hexdigest()
        repo.commits[sha] = _Commit(sha, message, author, committer, list(parents), self._seq, _now(), tree)
        return sha

    def add_commit(
        self,
        full_name: str,
        branch: str,
        message: str,
        *,
        author: Person,
        committer: Person | None = None,
        parents: list[str] | None = None,
    ) -> str:
        with self._lock:
            repo = self._repo(full_name)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[repo.default_branch]
                repo.files.setdefault(branch, dict(repo.files.get(repo.default_branch, {})))
            parent_list = list(parents) if parents is not None else [repo.branches[branch]]
            sha = self._make_commit(repo, message, author, committer or author, parent_list)
            repo.branches[branch] = sha
            return sha

    def set_branch(self, full_name: str, branch: str, sha: str) -> None:
        with self._lock:
            repo = self._repo(full_name)
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {full_name}")
            repo.branches[branch] = sha
            repo.files.setdefault(branch, dict(repo.files.get(repo.default_branch, {})))

    def open_pull_request(
        self,
        full_name: str,
        *,
        head: str,
        base: str = "main",
        title: str,
        author: str,
        body: str = "",
        labels: tuple[str, ...] = (),
        draft: bool = False,
    ) -> int:
        with self._lock:
            repo = self._repo(full_name)
            if head not in repo.branches or base not in repo.branches:
                raise KeyError(f"both branches must exist: head {head!r}, base {base!r}")
            number = self._next_id(f"issue:{repo.full_name}", 0)
            repo.pulls[number] = _PullRequest(
                number=number,
                id=self._next_id("pull", 1_900_000_000),
                title=title,
                body=body,
                author=author,
                head_ref=head,
                base_ref=base,
                labels=list(labels),
                draft=draft,
            )
            repo.reviews[number] = []
            payload = self.pull_request_payload(full_name, number, "opened", sender=self._user(author))
        self._auto_deliver("pull_request", payload)
        return number

    def push(
        self, full_name: str, branch: str, message: str, *, author: Person, committer: Person | None = None
    ) -> str:
        with self._lock:
            repo = self._repo(full_name)
            before = repo.branches.get(branch) or repo.branches[repo.default_branch]
            sha = self.add_commit(full_name, branch, message, author=author, committer=committer)
            sender = self._user(author.login or repo.owner)
            payloads = [
                self.pull_request_payload(full_name, pr.number, "synchronize", before=before, after=sha, sender=sender)
                for pr in repo.pulls.values()
                if pr.state == "open" and pr.head_ref == branch
            ]
        for payload in payloads:
            self._auto_deliver("pull_request", payload)
        return sha

    def edit_pull_request(
        self,
        full_name: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        labels: Iterable[str] | None = None,
        state: str | None = None,
    ) -> None:
        payloads: list[dict[str, Any]] = []
        with self._lock:
            repo = self._repo(full_name)
            pr = repo.pulls[number]
            changes: dict[str, Any] = {}
            if title is not None and title != pr.title:
                changes["title"] = {"from": pr.title}
                pr.title = title
            if body is not None and body != pr.body:
                changes["body"] = {"from": pr.body}
                pr.body = body
            pr.updated_at = _now()
            if changes:
                payloads.append(self.pull_request_payload(full_name, number, "edited", changes=changes))
            if labels is not None:
                new = list(labels)
                for added in [name for name in new if name not in pr.labels]:
                    pr.labels.append(added)
                    payloads.append(
                        self.pull_request_payload(full_name, number, "labeled", label=self._label(repo, added))
                    )
                for removed in [name for name in pr.labels if name not in new]:
                    pr.labels.remove(removed)
                    payloads.append(
                        self.pull_request_payload(full_name, number, "unlabeled", label=self._label(repo, removed))
                    )
            if state is not None and state != pr.state:
                if state not in ("open", "closed"):
                    raise ValueError(f"state must be 'open' or 'closed', not {state!r}")
                pr.state = state
                pr.closed_at = _now() if state == "closed" else None
                payloads.append(
                    self.pull_request_payload(full_name, number, "closed" if state == "closed" else "reopened")
                )
        for payload in payloads:
            self._auto_deliver("pull_request", payload)

    def add_review(
        self, full_name: str, number: int, *, login: str, state: str = "APPROVED", commit_id: str | None = None
    ) -> int:
        if state not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {REVIEW_STATES}, not {state!r}")
        with self._lock:
            repo = self._repo(full_name)
            pr = repo.pulls[number]
            review = _Review(
                id=self._next_id("review", 80_000_000),
                login=login,
                state=state,
                commit_id=commit_id or repo.branches[pr.head_ref],
                submitted_at=_now(),
            )
            repo.reviews[number].append(review)
            payload = self.review_payload(full_name, number, review.id)
        self._auto_deliver("pull_request_review", payload)
        return review.id

    def check_runs(self, full_name: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            repo = self._repo(full_name)
            return [
                copy.deepcopy(self._check_run_json(run))
                for run in sorted(self._check_runs.values(), key=lambda r: r["id"])
                if run["repo"] == repo.full_name.lower() and (head_sha is None or run["head_sha"] == head_sha)
            ]

    def pull_request(self, full_name: str, number: int) -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            return self._pull_json(repo, repo.pulls[number])

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    # ------------------------------------------------------------------ state API: deployments

    def add_environment(self, full_name: str, name: str, *, protection_rule_app: bool = True) -> None:
        """An environment; with `protection_rule_app` our app is one of its custom deployment protection rules."""
        with self._lock:
            repo = self._repo(full_name)
            self._environment(repo, name)["protection_rule_app"] = protection_rule_app

    def _environment(self, repo: _Repo, name: str) -> dict[str, Any]:
        env = repo.environments.get(name)
        if env is None:
            env = {
                "id": self._next_id("environment", 160_000_000),
                "rule_id": self._next_id("protection_rule", 3_000),
                "name": name,
                "protection_rule_app": False,
                "created": _now(),
            }
            repo.environments[name] = env
        return env

    def add_workflow_run(
        self, full_name: str, *, head_sha: str, head_branch: str, name: str = "deploy", event: str = "push"
    ) -> int:
        with self._lock:
            repo = self._repo(full_name)
            return self._new_workflow_run(repo, head_sha, head_branch, name, event, repo.owner)

    def _new_workflow_run(self, repo: _Repo, head_sha: str, head_branch: str, name: str, event: str, actor: str) -> int:
        if head_sha not in repo.commits:
            raise KeyError(f"unknown commit {head_sha} in {repo.full_name}")
        run_id = self._next_id("workflow_run", 9_000_000_000)
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
            "created": _now(),
            "suite_id": self._next_id("suite", 5_000_000_000),
            "progress": {},  # environment name -> progress reports accepted
            "decided": {},  # environment name -> approved | rejected
        }
        return run_id

    def create_deployment(
        self,
        full_name: str,
        *,
        ref: str,
        sha: str,
        environment: str,
        creator: str,
        run_id: int | None = None,
        deliver: bool = True,
    ) -> int:
        """A deployment by a workflow run; asks our app through `deployment_protection_rule` when the
        environment has our rule (and a webhook URL is set). Unknown environments are created without it."""
        with self._lock:
            repo = self._repo(full_name)
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {full_name}")
            env = self._environment(repo, environment)
            if run_id is None:
                run_id = self._new_workflow_run(repo, sha, ref, "deploy", "push", creator)
            elif run_id not in repo.workflow_runs:
                raise KeyError(f"unknown workflow run {run_id} in {full_name}")
            now = _now()
            deployment_id = self._next_id("deployment", 1_200_000_000)
            repo.deployments[deployment_id] = {
                "id": deployment_id,
                "sha": sha,
                "ref": ref,
                "environment": environment,
                "creator": creator,
                "run_id": run_id,
                "created": now,
                "updated": now,
                "statuses": [],
            }
            payload = None
            if env["protection_rule_app"] and deliver and self.webhook_url:
                payload = self.protection_rule_payload(full_name, deployment_id)
        if payload is not None:
            self.deliver("deployment_protection_rule", payload)
        return deployment_id

    def protection_rule_payload(
        self, full_name: str, deployment_id: int, *, null_deployment: bool = False, callback_url: str | None = None
    ) -> dict[str, Any]:
        """The `deployment_protection_rule` `requested` payload for a deployment, for delivery by hand."""
        with self._lock:
            repo = self._repo(full_name)
            deployment = repo.deployments[deployment_id]
            run = repo.workflow_runs[deployment["run_id"]]
            callback = callback_url or (
                f"{self.api}/repos/{repo.full_name}/actions/runs/{run['id']}/deployment_protection_rule"
            )
            pulls = [
                self._pull_json(repo, pr, webhook=True)
                for pr in repo.pulls.values()
                if pr.state == "open" and self._head_sha(repo, pr) == deployment["sha"]
            ]
            return {
                "action": "requested",
                "environment": deployment["environment"],
                "event": run["event"],
                "sha": deployment["sha"],
                "ref": deployment["ref"],
                "deployment_callback_url": callback,
                "deployment": None if null_deployment else self._deployment_json(repo, deployment),
                "pull_requests": pulls,
                "repository": self._repo_json(repo),
                "installation": self._installation_ref(repo),
                "sender": self._user(deployment["creator"]),
            }

    def add_check_run(
        self,
        full_name: str,
        head_sha: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        app_slug: str = "github-actions",
    ) -> int:
        """A check run another app (GitHub Actions by default) posted."""
        if status not in CHECK_STATUSES:
            raise ValueError(f"status must be one of {CHECK_STATUSES}, not {status!r}")
        with self._lock:
            repo = self._repo(full_name)
            if head_sha not in repo.commits:
                raise KeyError(f"unknown commit {head_sha} in {full_name}")
            now = _iso(_now())
            run: dict[str, Any] = {
                "id": self._next_id("check_run", 10_000_000_000),
                "repo": repo.full_name.lower(),
                "head_sha": head_sha,
                "name": name,
                "external_id": "",
                "details_url": f"{HTML}/{repo.full_name}/actions/runs",
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "started_at": now,
                "completed_at": now if status == "completed" else None,
                "output": {"title": None, "summary": None, "text": None},
                "annotations_count": 0,
                "suite_id": self._check_suite_id(repo, head_sha, app_slug),
                "created": _now(),
                "app_slug": app_slug,
            }
            self._check_runs[run["id"]] = run
            return int(run["id"])

    def add_status(self, full_name: str, sha: str, context: str, state: str) -> None:
        """A commit status another integration posted."""
        if state not in STATUS_STATES:
            raise ValueError(f"state must be one of {STATUS_STATES}, not {state!r}")
        with self._lock:
            repo = self._repo(full_name)
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {full_name}")
            self._new_status(repo, sha, state, context, None, None, "ci-bot")

    def deployment_answers(self, full_name: str) -> list[dict[str, Any]]:
        """Every accepted POST on .../actions/runs/{run_id}/deployment_protection_rule, in order
        (refused ones are only in `recorder.requests`)."""
        with self._lock:
            return [dict(answer) for answer in self._repo(full_name).answers]

    def set_deployment_status(self, full_name: str, deployment_id: int, state: str) -> None:
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"state must be one of {DEPLOYMENT_STATES}, not {state!r}")
        with self._lock:
            repo = self._repo(full_name)
            self._new_deployment_status(repo, repo.deployments[deployment_id], {"state": state}, "github-actions[bot]")

    # ------------------------------------------------------------------ webhooks

    def _auto_deliver(self, event: str, payload: dict[str, Any]) -> None:
        if self.webhook_url:
            self.deliver(event, payload)

    def deliver(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        delivery_id: str | None = None,
        secret: str | None = None,
        url: str | None = None,
    ) -> requests.Response:
        target = url or self.webhook_url
        if not target:
            raise ValueError("no webhook URL: pass url= or construct the simulator with webhook_url")
        body = json.dumps(payload, separators=(",", ":")).encode()
        key = (secret if secret is not None else self.webhook_secret).encode()
        delivery = delivery_id or str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/6a1e9f3",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        }
        response = requests.post(target, data=body, headers=headers, timeout=30)
        with self._lock:
            self.deliveries.append(
                {"event": event, "delivery_id": delivery, "payload": payload, "status": response.status_code}
            )
        return response

    def _installation_ref(self, repo: _Repo) -> dict[str, Any]:
        return {"id": repo.installation_id, "node_id": _node_id("Installation", repo.installation_id)}

    def _envelope(self, repo: _Repo, action: str, sender: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "action": action,
            "repository": self._repo_json(repo),
            "sender": sender or self._user(repo.owner),
            "installation": self._installation_ref(repo),
        }

    def pull_request_payload(self, full_name: str, number: int, action: str, **extra: Any) -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            pr = repo.pulls[number]
            payload = self._envelope(repo, action, extra.pop("sender", None) or self._user(pr.author))
            payload["number"] = number
            payload["pull_request"] = self._pull_json(repo, pr, webhook=True)
            payload.update(extra)
            return payload

    def review_payload(self, full_name: str, number: int, review_id: int) -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            pr = repo.pulls[number]
            review = next(r for r in repo.reviews[number] if r.id == review_id)
            payload = self._envelope(repo, "submitted", self._user(review.login))
            payload["review"] = self._review_json(repo, pr, review)
            payload["pull_request"] = self._pull_json(repo, pr, webhook=True)
            return payload

    def check_run_payload(self, full_name: str, check_run_id: int, action: str = "rerequested") -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            run = self._check_runs[check_run_id]
            payload = self._envelope(repo, action, None)
            check_run = self._check_run_json(run)
            check_run["check_suite"] = self._check_suite_json(repo, run["head_sha"])
            payload["check_run"] = check_run
            return payload

    def check_suite_payload(self, full_name: str, head_sha: str, action: str = "rerequested") -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            payload = self._envelope(repo, action, None)
            payload["check_suite"] = self._check_suite_json(repo, head_sha, full=True)
            return payload

    def merge_group_payload(
        self, full_name: str, *, head_sha: str, base_sha: str, head_ref: str, base_ref: str = "refs/heads/main"
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._repo(full_name)
            commit = repo.commits.get(head_sha)
            if commit is not None:
                head_commit = {
                    "id": commit.sha,
                    "tree_id": commit.tree,
                    "message": commit.message,
                    "timestamp": _iso(commit.date),
                    "author": {"name": commit.author.name, "email": commit.author.email},
                    "committer": {"name": commit.committer.name, "email": commit.committer.email},
                }
            else:
                head_commit = {
                    "id": head_sha,
                    "tree_id": hashlib.sha1(head_sha.encode()).hexdigest(),
                    "message": "Merge queue entry",
                    "timestamp": _iso(_now()),
                    "author": {"name": "GitHub", "email": "noreply@github.com"},
                    "committer": {"name": "GitHub", "email": "noreply@github.com"},
                }
            payload = self._envelope(repo, "checks_requested", None)
            payload["merge_group"] = {
                "head_sha": head_sha,
                "head_ref": head_ref,
                "base_sha": base_sha,
                "base_ref": base_ref,
                "head_commit": head_commit,
            }
            return payload

    # ------------------------------------------------------------------ JSON shapes

    def _user(self, login: str) -> dict[str, Any]:
        user_id = self._user_id(login)
        users = f"{self.api}/users/{login}"
        return {
            "login": login,
            "id": user_id,
            "node_id": _node_id("User", user_id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            "gravatar_id": "",
            "url": users,
            "html_url": f"{HTML}/{login}",
            "followers_url": f"{users}/followers",
            "following_url": f"{users}/following{{/other_user}}",
            "gists_url": f"{users}/gists{{/gist_id}}",
            "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{users}/subscriptions",
            "organizations_url": f"{users}/orgs",
            "repos_url": f"{users}/repos",
            "events_url": f"{users}/events{{/privacy}}",
            "received_events_url": f"{users}/received_events",
            "type": "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        html = f"{HTML}/{repo.full_name}"
        urls = {
            "forks_url": "/forks",
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "teams_url": "/teams",
            "hooks_url": "/hooks",
            "issue_events_url": "/issues/events{/number}",
            "events_url": "/events",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "tags_url": "/tags",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "languages_url": "/languages",
            "stargazers_url": "/stargazers",
            "contributors_url": "/contributors",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "merges_url": "/merges",
            "archive_url": "/{archive_format}{/ref}",
            "downloads_url": "/downloads",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
            "deployments_url": "/deployments",
        }
        open_issues = sum(1 for pr in repo.pulls.values() if pr.state == "open")
        pushed = max((c.date for c in repo.commits.values()), default=repo.created_at)
        result: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user(repo.owner),
            "html_url": html,
            "description": None,
            "fork": False,
            "url": api,
        }
        result.update({key: api + suffix for key, suffix in urls.items()})
        result.update(
            {
                "created_at": _iso(repo.created_at),
                "updated_at": _iso(repo.created_at),
                "pushed_at": _iso(pushed),
                "git_url": f"git://github.com/{repo.full_name}.git",
                "ssh_url": f"git@github.com:{repo.full_name}.git",
                "clone_url": f"{html}.git",
                "svn_url": html,
                "homepage": None,
                "size": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "language": None,
                "has_issues": True,
                "has_projects": True,
                "has_downloads": True,
                "has_wiki": True,
                "has_pages": False,
                "has_discussions": False,
                "forks_count": 0,
                "mirror_url": None,
                "archived": False,
                "disabled": False,
                "open_issues_count": open_issues,
                "license": None,
                "allow_forking": True,
                "is_template": False,
                "web_commit_signoff_required": False,
                "topics": [],
                "visibility": "private" if repo.private else "public",
                "forks": 0,
                "open_issues": open_issues,
                "watchers": 0,
                "default_branch": repo.default_branch,
            }
        )
        return result

    def _label(self, repo: _Repo, name: str) -> dict[str, Any]:
        label_id = int(hashlib.sha1(f"{repo.full_name}:{name}".encode()).hexdigest()[:8], 16)
        return {
            "id": label_id,
            "node_id": _node_id("Label", label_id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }

    def _git_person(self, person: Person, moment: datetime) -> dict[str, Any]:
        return {"name": person.name, "email": person.email, "date": _iso(moment)}

    def _commit_json(self, repo: _Repo, commit: _Commit, *, detail: bool = False) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        result: dict[str, Any] = {
            "sha": commit.sha,
            "node_id": _node_id("Commit", commit.sha[:12]),
            "commit": {
                "author": self._git_person(commit.author, commit.date),
                "committer": self._git_person(commit.committer, commit.date),
                "message": commit.message,
                "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
                "url": f"{api}/git/commits/{commit.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"{HTML}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "author": self._user(commit.author.login) if commit.author.login else None,
            "committer": self._user(commit.committer.login) if commit.committer.login else None,
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{HTML}/{repo.full_name}/commit/{p}"}
                for p in commit.parents
            ],
        }
        if detail:
            result["stats"] = {"total": 0, "additions": 0, "deletions": 0}
            result["files"] = []
        return result

    def _head_sha(self, repo: _Repo, pr: _PullRequest) -> str:
        return repo.branches[pr.head_ref]

    def _pull_json(self, repo: _Repo, pr: _PullRequest, *, webhook: bool = False) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        html = f"{HTML}/{repo.full_name}/pull/{pr.number}"
        head_sha = self._head_sha(repo, pr)
        base_sha = repo.branches[pr.base_ref]
        ahead = self._only_in(repo, head_sha, base_sha)
        owner_user = self._user(repo.owner)
        repo_json = self._repo_json(repo)

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": owner_user, "repo": repo_json}

        links = {
            "self": {"href": f"{api}/pulls/{pr.number}"},
            "html": {"href": html},
            "issue": {"href": f"{api}/issues/{pr.number}"},
            "comments": {"href": f"{api}/issues/{pr.number}/comments"},
            "review_comments": {"href": f"{api}/pulls/{pr.number}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{pr.number}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        }
        result: dict[str, Any] = {
            "url": f"{api}/pulls/{pr.number}",
            "id": pr.id,
            "node_id": _node_id("PullRequest", pr.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "commits_url": f"{api}/pulls/{pr.number}/commits",
            "review_comments_url": f"{api}/pulls/{pr.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pr.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._user(pr.author),
            "body": pr.body or None,
            "labels": [self._label(repo, name) for name in pr.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _iso(pr.created_at),
            "updated_at": _iso(pr.updated_at),
            "closed_at": _iso(pr.closed_at) if pr.closed_at else None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(pr.head_ref, head_sha),
            "base": side(pr.base_ref, base_sha),
            "_links": links,
            "author_association": "OWNER" if pr.author == repo.owner else "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pr.draft,
            "merged": False,
            "mergeable": None,
            "rebaseable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": len(ahead),
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }
        if webhook:
            result.update(
                {
                    "allow_auto_merge": False,
                    "allow_update_branch": False,
                    "delete_branch_on_merge": False,
                    "merge_commit_message": "PR_TITLE",
                    "merge_commit_title": "MERGE_MESSAGE",
                    "squash_merge_commit_message": "COMMIT_MESSAGES",
                    "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                    "use_squash_pr_title_as_default": False,
                }
            )
        return result

    def _review_json(self, repo: _Repo, pr: _PullRequest, review: _Review) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        html = f"{HTML}/{repo.full_name}/pull/{pr.number}#pullrequestreview-{review.id}"
        return {
            "id": review.id,
            "node_id": _node_id("PullRequestReview", review.id),
            "user": self._user(review.login),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": f"{api}/pulls/{pr.number}",
            "_links": {"html": {"href": html}, "pull_request": {"href": f"{api}/pulls/{pr.number}"}},
            "submitted_at": _iso(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": "OWNER" if review.login == repo.owner else "COLLABORATOR",
        }

    def _app_json(self) -> dict[str, Any]:
        owner = self._user("countersign-org")
        owner["type"] = "Organization"
        created = _iso(datetime(2024, 1, 1, tzinfo=UTC))
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "client_id": f"Iv1.{self.app_id:016x}",
            "node_id": _node_id("Integration", self.app_id),
            "owner": owner,
            "name": "Countersign",
            "description": "Checks Jira approvals on pull requests and deployments.",
            "external_url": "https://countersign.example.com",
            "html_url": f"{HTML}/apps/{self.app_slug}",
            "created_at": created,
            "updated_at": created,
            "permissions": dict(APP_PERMISSIONS),
            "events": list(APP_EVENTS),
            "installations_count": len({r.installation_id for r in self._repos.values()}),
        }

    def _app_json_for(self, slug: str) -> dict[str, Any]:
        if slug == self.app_slug:
            return self._app_json()
        app_id, owner_login, name = KNOWN_APPS.get(
            slug, (200_000 + int(hashlib.sha1(slug.encode()).hexdigest()[:5], 16), slug, slug)
        )
        owner = self._user(owner_login)
        owner["type"] = "Organization"
        created = _iso(datetime(2018, 7, 30, tzinfo=UTC))
        return {
            "id": app_id,
            "slug": slug,
            "client_id": f"Iv1.{app_id:016x}",
            "node_id": _node_id("Integration", app_id),
            "owner": owner,
            "name": name,
            "description": "",
            "external_url": f"{HTML}/apps/{slug}",
            "html_url": f"{HTML}/apps/{slug}",
            "created_at": created,
            "updated_at": created,
            "permissions": {"checks": "write", "contents": "write", "deployments": "write", "metadata": "read"},
            "events": ["check_run", "check_suite", "push"],
        }

    def _simple_commit(self, commit: _Commit) -> dict[str, Any]:
        return {
            "id": commit.sha,
            "tree_id": commit.tree,
            "message": commit.message,
            "timestamp": _iso(commit.date),
            "author": {"name": commit.author.name, "email": commit.author.email},
            "committer": {"name": commit.committer.name, "email": commit.committer.email},
        }

    def _deployment_json(self, repo: _Repo, deployment: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        deployment_id = deployment["id"]
        return {
            "url": f"{api}/deployments/{deployment_id}",
            "id": deployment_id,
            "node_id": _node_id("Deployment", deployment_id),
            "sha": deployment["sha"],
            "ref": deployment["ref"],
            "task": "deploy",
            "payload": {},
            "original_environment": deployment["environment"],
            "environment": deployment["environment"],
            "description": None,
            "creator": self._user(deployment["creator"]),
            "created_at": _iso(deployment["created"]),
            "updated_at": _iso(deployment["updated"]),
            "statuses_url": f"{api}/deployments/{deployment_id}/statuses",
            "repository_url": api,
            "transient_environment": False,
            "production_environment": deployment["environment"] == "production",
            "performed_via_github_app": self._app_json_for("github-actions"),
        }

    def _deployment_status_json(
        self, repo: _Repo, deployment: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        deployment_url = f"{api}/deployments/{deployment['id']}"
        return {
            "url": f"{deployment_url}/statuses/{status['id']}",
            "id": status["id"],
            "node_id": _node_id("DeploymentStatus", status["id"]),
            "state": status["state"],
            "creator": self._user(status["creator"]),
            "description": status["description"],
            "environment": status["environment"],
            "target_url": status["target_url"],
            "created_at": _iso(status["created"]),
            "updated_at": _iso(status["created"]),
            "deployment_url": deployment_url,
            "repository_url": api,
            "environment_url": status["environment_url"],
            "log_url": status["log_url"],
            "performed_via_github_app": None,
        }

    def _new_deployment_status(
        self, repo: _Repo, deployment: dict[str, Any], body: dict[str, Any], creator: str
    ) -> dict[str, Any]:
        previous = deployment["statuses"][-1] if deployment["statuses"] else None
        log_url = body.get("log_url") or body.get("target_url") or ""
        status = {
            "id": self._next_id("deployment_status", 2_500_000_000),
            "state": body["state"],
            "description": body.get("description") or "",
            "environment": body.get("environment") or (previous or deployment)["environment"],
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": body.get("environment_url") or "",
            "creator": creator,
            "created": _now(),
        }
        deployment["statuses"].append(status)
        deployment["updated"] = status["created"]
        return status

    def _environment_json(self, repo: _Repo, env: dict[str, Any]) -> dict[str, Any]:
        name = env["name"]
        return {
            "id": env["id"],
            "node_id": _node_id("Environment", env["id"]),
            "name": name,
            "url": f"{self.api}/repos/{repo.full_name}/environments/{name}",
            "html_url": f"{HTML}/{repo.full_name}/deployments/activity_log?environments_filter={name}",
            "created_at": _iso(env["created"]),
            "updated_at": _iso(env["created"]),
            # Built-in rules only: custom (app) rules are listed at .../deployment_protection_rules.
            "protection_rules": [],
            "deployment_branch_policy": None,
        }

    def _run_state(self, repo: _Repo, run: dict[str, Any]) -> tuple[str, str | None]:
        """Waiting while one of our gates is undecided; failed when one rejected; in progress otherwise."""
        gated = {
            d["environment"]
            for d in repo.deployments.values()
            if d["run_id"] == run["id"] and repo.environments[d["environment"]]["protection_rule_app"]
        }
        if "rejected" in run["decided"].values():
            return "completed", "failure"
        if gated - set(run["decided"]):
            return "waiting", None
        return "in_progress", None

    def _workflow_run_json(self, repo: _Repo, run: dict[str, Any], *, with_pulls: bool = True) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        run_id = run["id"]
        commit = repo.commits[run["head_sha"]]
        repo_json = self._repo_json(repo)
        actor = self._user(run["actor"])
        status, conclusion = self._run_state(repo, run)
        return {
            "id": run_id,
            "name": run["name"],
            "node_id": _node_id("WorkflowRun", run_id),
            "check_suite_id": run["suite_id"],
            "check_suite_node_id": _node_id("CheckSuite", run["suite_id"]),
            "head_branch": run["head_branch"],
            "head_sha": run["head_sha"],
            "path": f".github/workflows/{run['name']}.yml",
            "display_title": commit.message.split("\n", 1)[0],
            "run_number": run["number"],
            "run_attempt": 1,
            "referenced_workflows": [],
            "event": run["event"],
            "status": status,
            "conclusion": conclusion,
            "workflow_id": run["workflow_id"],
            "url": f"{api}/actions/runs/{run_id}",
            "html_url": f"{HTML}/{repo.full_name}/actions/runs/{run_id}",
            "pull_requests": self._pulls_for_sha(repo, run["head_sha"], minimal=True) if with_pulls else [],
            "created_at": _iso(run["created"]),
            "updated_at": _iso(run["created"]),
            "actor": actor,
            "triggering_actor": actor,
            "run_started_at": _iso(run["created"]),
            "jobs_url": f"{api}/actions/runs/{run_id}/jobs",
            "logs_url": f"{api}/actions/runs/{run_id}/logs",
            "check_suite_url": f"{api}/check-suites/{run['suite_id']}",
            "artifacts_url": f"{api}/actions/runs/{run_id}/artifacts",
            "cancel_url": f"{api}/actions/runs/{run_id}/cancel",
            "rerun_url": f"{api}/actions/runs/{run_id}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{api}/actions/workflows/{run['workflow_id']}",
            "head_commit": self._simple_commit(commit),
            "repository": repo_json,
            "head_repository": repo_json,
            "head_repository_id": repo.id,
        }

    def _pulls_for_sha(self, repo: _Repo, sha: str, *, minimal: bool) -> list[dict[str, Any]]:
        found = []
        for pr in repo.pulls.values():
            # Check runs name the open PRs whose head is the commit; the commit's PR listing names closed ones too.
            if minimal and pr.state != "open":
                continue
            head_sha = self._head_sha(repo, pr)
            if head_sha == sha or (not minimal and sha in self._only_in(repo, head_sha, repo.branches[pr.base_ref])):
                if minimal:
                    api = f"{self.api}/repos/{repo.full_name}"
                    minimal_repo = {"id": repo.id, "url": api, "name": repo.name}
                    found.append(
                        {
                            "id": pr.id,
                            "number": pr.number,
                            "url": f"{api}/pulls/{pr.number}",
                            "head": {"ref": pr.head_ref, "sha": head_sha, "repo": minimal_repo},
                            "base": {"ref": pr.base_ref, "sha": repo.branches[pr.base_ref], "repo": minimal_repo},
                        }
                    )
                else:
                    found.append(self._pull_json(repo, pr))
        return found

    def _check_suite_id(self, repo: _Repo, head_sha: str, app_slug: str | None = None) -> int:
        # A check suite belongs to one app and one commit.
        key = head_sha if app_slug in (None, self.app_slug) else f"{head_sha}:{app_slug}"
        if key not in repo.check_suites:
            repo.check_suites[key] = self._next_id("suite", 5_000_000_000)
        return repo.check_suites[key]

    def _check_suite_json(self, repo: _Repo, head_sha: str, *, full: bool = False) -> dict[str, Any]:
        suite_id = self._check_suite_id(repo, head_sha)
        runs = [
            r
            for r in self._check_runs.values()
            if r["repo"] == repo.full_name.lower()
            and r["head_sha"] == head_sha
            and r.get("app_slug", self.app_slug) == self.app_slug
        ]
        if runs and all(r["status"] == "completed" for r in runs):
            status, conclusion = "completed", _worst(r["conclusion"] for r in runs)
        else:
            status, conclusion = ("in_progress" if runs else "queued"), None
        branch = next((b for b, s in sorted(repo.branches.items()) if s == head_sha), None)
        commit = repo.commits.get(head_sha)
        before = commit.parents[0] if commit and commit.parents else "0" * 40
        suite: dict[str, Any] = {
            "id": suite_id,
            "node_id": _node_id("CheckSuite", suite_id),
            "head_branch": branch,
            "head_sha": head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{self.api}/repos/{repo.full_name}/check-suites/{suite_id}",
            "before": before,
            "after": head_sha,
            "pull_requests": self._pulls_for_sha(repo, head_sha, minimal=True),
            "app": self._app_json(),
            "created_at": _iso(min((r["created"] for r in runs), default=_now())),
            "updated_at": _iso(_now()),
        }
        if full:
            suite["check_runs_url"] = f"{self.api}/repos/{repo.full_name}/check-suites/{suite_id}/check-runs"
            suite["latest_check_runs_count"] = len(runs)
            suite["rerequestable"] = True
            suite["runs_rerequestable"] = True
            if commit is not None:
                suite["head_commit"] = {
                    "id": commit.sha,
                    "tree_id": commit.tree,
                    "message": commit.message,
                    "timestamp": _iso(commit.date),
                    "author": {"name": commit.author.name, "email": commit.author.email},
                    "committer": {"name": commit.committer.name, "email": commit.committer.email},
                }
        return suite

    def _check_run_json(self, run: dict[str, Any]) -> dict[str, Any]:
        repo = self._repos[run["repo"]]
        api = f"{self.api}/repos/{repo.full_name}"
        output = run["output"]
        return {
            "id": run["id"],
            "node_id": _node_id("CheckRun", run["id"]),
            "head_sha": run["head_sha"],
            "external_id": run["external_id"],
            "url": f"{api}/check-runs/{run['id']}",
            "html_url": f"{HTML}/{repo.full_name}/runs/{run['id']}",
            "details_url": run["details_url"],
            "status": run["status"],
            "conclusion": run["conclusion"],
            "started_at": run["started_at"],
            "completed_at": run["completed_at"],
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": run["annotations_count"],
                "annotations_url": f"{api}/check-runs/{run['id']}/annotations",
            },
            "name": run["name"],
            "check_suite": {"id": run["suite_id"]},
            "app": self._app_json_for(run.get("app_slug", self.app_slug)),
            "pull_requests": self._pulls_for_sha(repo, run["head_sha"], minimal=True),
        }

    # ------------------------------------------------------------------ graph

    def _ancestors(self, repo: _Repo, sha: str) -> frozenset[str]:
        key = (repo.full_name.lower(), sha)
        cached = self._ancestry.get(key)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = [sha]
        commits = repo.commits
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(commits[current].parents)
        result = frozenset(seen)
        if len(self._ancestry) > 512:
            self._ancestry.clear()
        self._ancestry[key] = result
        return result

    def _only_in(self, repo: _Repo, head: str, base: str) -> list[str]:
        """Commits reachable from head and not from base, oldest first (creation order is topological)."""
        key = (repo.full_name.lower(), head, base)
        cached = self._ranges.get(key)
        if cached is None:
            reachable = self._ancestors(repo, head) - self._ancestors(repo, base)
            cached = sorted(reachable, key=lambda s: repo.commits[s].seq)
            if len(self._ranges) > 512:
                self._ranges.clear()
            self._ranges[key] = cached
        return cached

    def _history(self, repo: _Repo, head: str) -> list[str]:
        """Every commit head reaches, newest first."""
        key = (repo.full_name.lower(), head, "")
        cached = self._ranges.get(key)
        if cached is None:
            cached = sorted(self._ancestors(repo, head), key=lambda s: -repo.commits[s].seq)
            if len(self._ranges) > 512:
                self._ranges.clear()
            self._ranges[key] = cached
        return cached

    def _merge_base(self, repo: _Repo, base: str, head: str) -> str:
        key = (repo.full_name.lower(), head, "merge-base:" + base)
        cached = self._ranges.get(key)
        if cached is None:
            common = self._ancestors(repo, head) & self._ancestors(repo, base)
            cached = [max(common, key=lambda s: repo.commits[s].seq) if common else base]
            self._ranges[key] = cached
        return cached[0]

    def _resolve(self, repo: _Repo, ref: str) -> str | None:
        for prefix in ("refs/heads/", "heads/"):
            if ref.startswith(prefix) and ref[len(prefix) :] in repo.branches:
                return repo.branches[ref[len(prefix) :]]
        if ref in repo.branches:
            return repo.branches[ref]
        if ref in repo.commits:
            return ref
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            matches = [sha for sha in repo.commits if sha.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        return None

    # ------------------------------------------------------------------ HTTP

    def _build_app(self) -> Flask:
        app = Flask("github-simulator")
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]

        @app.route("/_sim/state")
        def sim_state() -> Response:
            return self._json(self._state())

        @app.route("/", defaults={"path": ""}, methods=methods)
        @app.route("/<path:path>", methods=methods)
        def dispatch(path: str) -> Response:
            return self._dispatch("/" + path)

        return app

    def _route_table(self) -> list[tuple[str, re.Pattern[str], str, _Handler]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        table: list[tuple[str, str, str, _Handler]] = [
            ("GET", r"/app", "jwt", self._get_app),
            ("POST", r"/app/installations/(?P<installation_id>\d+)/access_tokens", "jwt", self._create_token),
            ("GET", repo + r"/installation", "jwt", self._get_repo_installation),
            ("GET", repo, "token", self._get_repo),
            ("GET", repo + r"/pulls", "token", self._list_pulls),
            ("GET", repo + r"/pulls/(?P<number>\d+)", "token", self._get_pull),
            ("GET", repo + r"/pulls/(?P<number>\d+)/commits", "token", self._list_pull_commits),
            ("GET", repo + r"/pulls/(?P<number>\d+)/reviews", "token", self._list_reviews),
            ("GET", repo + r"/commits", "token", self._list_commits),
            ("GET", repo + r"/commits/(?P<ref>.+)/check-runs", "token", self._list_check_runs_for_ref),
            ("GET", repo + r"/commits/(?P<ref>.+)/statuses", "token", self._list_statuses),
            ("GET", repo + r"/commits/(?P<ref>.+)/status", "token", self._combined_status),
            ("GET", repo + r"/commits/(?P<ref>[0-9a-fA-F]+)/pulls", "token", self._pulls_for_commit),
            ("GET", repo + r"/commits/(?P<ref>.+)", "token", self._get_commit),
            ("GET", repo + r"/compare/(?P<basehead>.+)", "token", self._compare),
            ("GET", repo + r"/contents/(?P<path>.+)", "token", self._get_contents),
            ("POST", repo + r"/check-runs", "token", self._create_check_run),
            ("GET", repo + r"/check-runs/(?P<check_run_id>\d+)", "token", self._get_check_run),
            ("PATCH", repo + r"/check-runs/(?P<check_run_id>\d+)", "token", self._update_check_run),
            ("POST", repo + r"/statuses/(?P<sha>[^/]+)", "token", self._create_status),
            # Legacy alias PyGithub's Commit.get_statuses() still calls; absent from the description, so the
            # contract test flags clients that use it.
            ("GET", repo + r"/statuses/(?P<ref>[^/]+)", "token", self._list_statuses),
            ("GET", repo + r"/actions/runs/(?P<run_id>\d+)", "token", self._get_workflow_run),
            (
                "POST",
                repo + r"/actions/runs/(?P<run_id>\d+)/deployment_protection_rule",
                "token",
                self._review_custom_gate,
            ),
            ("GET", repo + r"/deployments", "token", self._list_deployments),
            ("GET", repo + r"/deployments/(?P<deployment_id>\d+)", "token", self._get_deployment),
            ("GET", repo + r"/deployments/(?P<deployment_id>\d+)/statuses", "token", self._list_deployment_statuses),
            ("POST", repo + r"/deployments/(?P<deployment_id>\d+)/statuses", "token", self._create_deployment_status),
            (
                "GET",
                repo + r"/deployments/(?P<deployment_id>\d+)/statuses/(?P<status_id>\d+)",
                "token",
                self._get_deployment_status,
            ),
            ("GET", repo + r"/environments/(?P<name>[^/]+)", "token", self._get_environment),
            (
                "GET",
                repo + r"/environments/(?P<name>[^/]+)/deployment_protection_rules",
                "token",
                self._list_protection_rules,
            ),
        ]
        return [(method, re.compile(pattern + r"/?\Z"), auth, handler) for method, pattern, auth, handler in table]

    def _dispatch(self, path: str) -> Response:
        try:
            for method, pattern, auth, handler in self._routes:
                match = pattern.match(path)
                if not match:
                    continue
                if method != request.method:
                    continue
                installation = self._authenticate(auth)
                params = match.groupdict()
                with self._lock:
                    if "owner" in params:
                        repo = self._repos.get(f"{params.pop('owner')}/{params.pop('repo')}".lower())
                        if repo is None or (installation is not None and repo.installation_id != installation):
                            raise ApiError(404, "Not Found")
                        params["repo"] = repo
                    return handler(**params)
            # GitHub answers 404 for unknown paths and for methods a path does not take.
            raise ApiError(404, "Not Found")
        except ApiError as error:
            body = _error_body(error.status, error.message)
            if error.errors:
                body["errors"] = error.errors
            return self._json(body, error.status)

    def _authenticate(self, kind: str) -> int | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if kind == "jwt":
            if scheme.lower() != "bearer" or not credential:
                raise ApiError(401, "A JSON web token could not be decoded")
            self._verify_jwt(credential)
            return None
        if scheme.lower() not in ("token", "bearer") or not credential:
            raise ApiError(401, "Bad credentials")
        with self._lock:
            token = self._tokens.get(credential)
            if token is None or token.revoked or token.expires_at <= _now():
                raise ApiError(401, "Bad credentials")
            return token.installation_id

    def _verify_jwt(self, encoded: str) -> None:
        try:
            claims = jwt.decode(
                encoded,
                self.app_public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as error:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value in the future") from error
        except jwt.PyJWTError as error:
            raise ApiError(401, "A JSON web token could not be decoded") from error
        now = time.time()
        if str(claims["iss"]) != str(self.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")
        if claims["exp"] - claims["iat"] > 660:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        if claims["iat"] > now + 60:
            raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing a time in the past")

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
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

    def _paginate(
        self, items: list[Any], *, default_per_page: int = 30, cap: int = MAX_PER_PAGE
    ) -> tuple[list[Any], dict[str, str]]:
        # Like GitHub, an oversized per_page is clamped rather than refused.
        per_page = (
            max(1, min(_int_arg("per_page", default_per_page), cap)) if "per_page" in request.args else default_per_page
        )
        page = max(_int_arg("page", 1), 1)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(target: int, rel: str) -> str:
            args = {k: v for k, v in request.args.items() if k not in ("page",)}
            args["page"] = str(target)
            return f'<{self.api}{request.path}?{urlencode(args)}>; rel="{rel}"'

        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
            links.append(link(last, "last"))
        if page > 1:
            links.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # ------------------------------------------------------------------ handlers: app

    def _get_app(self) -> Response:
        return self._json(self._app_json())

    def _create_token(self, installation_id: str) -> Response:
        installation = int(installation_id)
        with self._lock:
            if not any(r.installation_id == installation for r in self._repos.values()):
                raise ApiError(404, "Not Found")
            body = request.get_json(silent=True) or {}
            permissions = body.get("permissions") or dict(APP_PERMISSIONS)
            alphabet = string.ascii_letters + string.digits
            # Real tokens change length over time: clients must treat them as opaque.
            token = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36 + secrets.randbelow(40)))
            expires = _now().replace(microsecond=0) + timedelta(hours=1)
            self._tokens[token] = _Token(installation, expires, permissions)
        return self._json(
            {
                "token": token,
                "expires_at": _iso(expires),
                "permissions": permissions,
                "repository_selection": "selected",
            },
            201,
        )

    def _get_repo_installation(self, repo: _Repo) -> Response:
        account = self._user(repo.owner)
        created = _iso(datetime(2024, 1, 2, tzinfo=UTC))
        return self._json(
            {
                "id": repo.installation_id,
                "account": account,
                "repository_selection": "selected",
                "access_tokens_url": f"{self.api}/app/installations/{repo.installation_id}/access_tokens",
                "repositories_url": f"{self.api}/installation/repositories",
                "html_url": f"{HTML}/settings/installations/{repo.installation_id}",
                "app_id": self.app_id,
                "app_slug": self.app_slug,
                "target_id": account["id"],
                "target_type": "User",
                "permissions": dict(APP_PERMISSIONS),
                "events": list(APP_EVENTS),
                "created_at": created,
                "updated_at": created,
                "single_file_name": None,
                "has_multiple_single_files": False,
                "single_file_paths": [],
                "suspended_by": None,
                "suspended_at": None,
            }
        )

    # ------------------------------------------------------------------ handlers: repos, pulls, commits

    def _get_repo(self, repo: _Repo) -> Response:
        return self._json({**self._repo_json(repo), "network_count": 0, "subscribers_count": 0})

    def _list_pulls(self, repo: _Repo) -> Response:
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
        chunk, headers = self._paginate(pulls)
        return self._json([self._pull_json(repo, pr) for pr in chunk], headers=headers)

    def _pull(self, repo: _Repo, number: str) -> _PullRequest:
        pr = repo.pulls.get(int(number))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def _get_pull(self, repo: _Repo, number: str) -> Response:
        return self._json(self._pull_json(repo, self._pull(repo, number)))

    def _list_pull_commits(self, repo: _Repo, number: str) -> Response:
        pr = self._pull(repo, number)
        shas = self._only_in(repo, self._head_sha(repo, pr), repo.branches[pr.base_ref])[:PR_COMMITS_LIMIT]
        chunk, headers = self._paginate(shas)
        return self._json([self._commit_json(repo, repo.commits[s]) for s in chunk], headers=headers)

    def _list_reviews(self, repo: _Repo, number: str) -> Response:
        pr = self._pull(repo, number)
        chunk, headers = self._paginate(list(repo.reviews.get(pr.number, [])))
        return self._json([self._review_json(repo, pr, r) for r in chunk], headers=headers)

    def _list_commits(self, repo: _Repo) -> Response:
        ref = request.args.get("sha") or repo.default_branch
        head = self._resolve(repo, ref)
        if head is None:
            raise ApiError(404, "Not Found")
        history = self._history(repo, head)
        chunk, headers = self._paginate(history)
        return self._json([self._commit_json(repo, repo.commits[s]) for s in chunk], headers=headers)

    def _get_commit(self, repo: _Repo, ref: str) -> Response:
        sha = self._resolve(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self._json(self._commit_json(repo, repo.commits[sha], detail=True))

    def _pulls_for_commit(self, repo: _Repo, ref: str) -> Response:
        sha = self._resolve(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        chunk, headers = self._paginate(self._pulls_for_sha(repo, sha, minimal=False))
        return self._json(chunk, headers=headers)

    def _compare(self, repo: _Repo, basehead: str) -> Response:
        if "..." not in basehead:
            raise ApiError(404, "Not Found")
        base_ref, head_ref = basehead.split("...", 1)
        base, head = self._resolve(repo, base_ref), self._resolve(repo, head_ref)
        if base is None or head is None:
            raise ApiError(404, "Not Found")
        ahead = self._only_in(repo, head, base)
        behind = self._only_in(repo, base, head)
        merge_base = self._merge_base(repo, base, head)
        # Unpaged, GitHub lists the first 250 commits; Link headers lead to the rest.
        chunk, headers = self._paginate(ahead, default_per_page=COMPARE_UNPAGED_LIMIT)
        if not ahead and not behind:
            status = "identical"
        elif ahead and behind:
            status = "diverged"
        else:
            status = "ahead" if ahead else "behind"
        api = f"{self.api}/repos/{repo.full_name}"
        html = f"{HTML}/{repo.full_name}/compare/{basehead}"
        return self._json(
            {
                "url": f"{api}/compare/{basehead}",
                "html_url": html,
                "permalink_url": f"{HTML}/{repo.full_name}/compare/{repo.owner}:{base[:7]}...{repo.owner}:{head[:7]}",
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "base_commit": self._commit_json(repo, repo.commits[base]),
                "merge_base_commit": self._commit_json(repo, repo.commits[merge_base]),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": [self._commit_json(repo, repo.commits[s]) for s in chunk],
                "files": [],
            },
            headers=headers,
        )

    def _get_contents(self, repo: _Repo, path: str) -> Response:
        ref = request.args.get("ref") or repo.default_branch
        branch = self._branch_for(repo, ref)
        path = path.strip("/")
        content = repo.files.get(branch, {}).get(path) if branch else None
        if content is None:
            raise ApiError(404, "Not Found")
        raw = content.encode()
        blob = _git_blob_sha(raw)
        encoded = base64.b64encode(raw).decode()
        wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + "\n"
        api = f"{self.api}/repos/{repo.full_name}"
        html = f"{HTML}/{repo.full_name}/blob/{branch}/{path}"
        self_url = f"{api}/contents/{path}?ref={ref}"
        return self._json(
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

    def _branch_for(self, repo: _Repo, ref: str) -> str | None:
        """Files are kept per branch: a SHA reads the branch whose history holds it, default first."""
        name = ref.removeprefix("refs/heads/")
        if name in repo.branches:
            return name
        sha = self._resolve(repo, ref)
        if sha is None:
            return None
        ordered = [repo.default_branch, *sorted(b for b in repo.branches if b != repo.default_branch)]
        for branch in ordered:
            if sha in self._ancestors(repo, repo.branches[branch]):
                return branch
        return None

    # ------------------------------------------------------------------ handlers: checks and statuses

    def _body(self) -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return body

    def _check_fields(self, body: dict[str, Any], run: dict[str, Any]) -> None:
        status = body.get("status", run.get("status"))
        if status not in CHECK_STATUSES:
            raise ApiError(422, "Invalid request.\n\nstatus is not included in the list.")
        conclusion = body.get("conclusion")
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise ApiError(422, f"Invalid request.\n\n{conclusion!r} is not a member of conclusion.")
        if status == "completed" and conclusion is None and run.get("conclusion") is None:
            raise ApiError(422, 'Invalid request.\n\nNo subschema in "anyOf" matched.\n"conclusion" wasn\'t supplied.')
        output = body.get("output")
        if output is not None:
            if not isinstance(output, dict) or "title" not in output or "summary" not in output:
                raise ApiError(422, 'Invalid request.\n\n"title", "summary" weren\'t supplied.')
            for key in ("summary", "text"):
                value = output.get(key)
                if value is not None and len(value) > SUMMARY_LIMIT:
                    raise ApiError(
                        422,
                        f"Invalid request.\n\nOnly 65535 characters are allowed; {len(value)} were supplied.",
                        [{"resource": "CheckRun", "field": f"output.{key}", "code": "too_long"}],
                    )
            if len(output.get("annotations") or []) > 50:
                raise ApiError(422, "Invalid request.\n\nAt most 50 annotations are allowed per request.")

    def _apply_check_fields(self, run: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("name", "details_url", "external_id"):
            if key in body:
                run[key] = body[key]
        if "started_at" in body:
            run["started_at"] = body["started_at"]
        if "status" in body:
            run["status"] = body["status"]
        if body.get("conclusion") is not None:
            run["conclusion"] = body["conclusion"]
            run["status"] = "completed"
        if run["status"] == "completed":
            run["completed_at"] = body.get("completed_at") or run.get("completed_at") or _iso(_now())
        if body.get("output") is not None:
            output = body["output"]
            run["output"] = {k: output.get(k) for k in ("title", "summary", "text")}
            run["annotations_count"] += len(output.get("annotations") or [])

    def _create_check_run(self, repo: _Repo) -> Response:
        body = self._body()
        missing = [key for key in ("name", "head_sha") if not body.get(key)]
        if missing:
            raise ApiError(422, "Invalid request.\n\n" + ", ".join(f'"{k}"' for k in missing) + " wasn't supplied.")
        head_sha = body["head_sha"]
        if head_sha not in repo.commits:
            raise ApiError(422, f"No commit found for SHA: {head_sha}")
        run: dict[str, Any] = {
            "id": self._next_id("check_run", 10_000_000_000),
            "repo": repo.full_name.lower(),
            "head_sha": head_sha,
            "name": body["name"],
            "external_id": body.get("external_id") or "",
            "details_url": body.get("details_url") or f"{HTML}/{repo.full_name}/runs",
            "status": "queued",
            "conclusion": None,
            "started_at": _iso(_now()),
            "completed_at": None,
            "output": {"title": None, "summary": None, "text": None},
            "annotations_count": 0,
            "suite_id": self._check_suite_id(repo, head_sha),
            "created": _now(),
        }
        self._check_fields(body, run)
        self._apply_check_fields(run, body)
        self._check_runs[run["id"]] = run
        return self._json(self._check_run_json(run), 201)

    def _run(self, repo: _Repo, check_run_id: str) -> dict[str, Any]:
        run = self._check_runs.get(int(check_run_id))
        if run is None or run["repo"] != repo.full_name.lower():
            raise ApiError(404, "Not Found")
        return run

    def _get_check_run(self, repo: _Repo, check_run_id: str) -> Response:
        return self._json(self._check_run_json(self._run(repo, check_run_id)))

    def _update_check_run(self, repo: _Repo, check_run_id: str) -> Response:
        run = self._run(repo, check_run_id)
        body = self._body()
        self._check_fields(body, run)
        self._apply_check_fields(run, body)
        return self._json(self._check_run_json(run))

    def _list_check_runs_for_ref(self, repo: _Repo, ref: str) -> Response:
        sha = self._resolve(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        name = request.args.get("check_name")
        status = request.args.get("status")
        runs = sorted(
            (r for r in self._check_runs.values() if r["repo"] == repo.full_name.lower() and r["head_sha"] == sha),
            key=lambda r: -r["id"],
        )
        runs = [r for r in runs if (name is None or r["name"] == name) and (status is None or r["status"] == status)]
        if request.args.get("filter", "latest") == "latest":
            seen: set[str] = set()
            latest = []
            for run in runs:
                if run["name"] not in seen:
                    seen.add(run["name"])
                    latest.append(run)
            runs = latest
        chunk, headers = self._paginate(runs)
        return self._json(
            {"total_count": len(runs), "check_runs": [self._check_run_json(r) for r in chunk]}, headers=headers
        )

    def _create_status(self, repo: _Repo, sha: str) -> Response:
        body = self._body()
        if sha not in repo.commits:
            raise ApiError(422, f"No commit found for SHA: {sha}")
        if body.get("state") not in STATUS_STATES:
            raise ApiError(422, "Validation Failed", [{"resource": "Status", "field": "state", "code": "invalid"}])
        status = self._new_status(
            repo,
            sha,
            body["state"],
            body.get("context") or "default",
            body.get("description"),
            body.get("target_url"),
            f"{self.app_slug}[bot]",
        )
        return self._json(status, 201)

    def _new_status(
        self,
        repo: _Repo,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None,
        creator_login: str,
    ) -> dict[str, Any]:
        status_id = self._next_id("status", 30_000_000_000)
        now = _iso(_now())
        creator = self._user(creator_login)
        creator["type"] = "Bot" if creator_login.endswith("[bot]") else "User"
        status = {
            "url": f"{self.api}/repos/{repo.full_name}/statuses/{sha}",
            "avatar_url": creator["avatar_url"],
            "id": status_id,
            "node_id": _node_id("StatusContext", status_id),
            "state": state,
            "description": description,
            "target_url": target_url,
            "context": context,
            "created_at": now,
            "updated_at": now,
            "creator": creator,
        }
        repo.statuses.setdefault(sha, []).append(status)
        return status

    def _list_statuses(self, repo: _Repo, ref: str) -> Response:
        sha = self._resolve(repo, ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        chunk, headers = self._paginate(list(reversed(repo.statuses.get(sha, []))))
        return self._json(chunk, headers=headers)

    def _combined_status(self, repo: _Repo, ref: str) -> Response:
        sha = self._resolve(repo, ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        latest: dict[str, dict[str, Any]] = {}
        for status in repo.statuses.get(sha, []):
            latest[status["context"]] = status
        states = {s["state"] for s in latest.values()}
        if states & {"error", "failure"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        statuses = [{k: v for k, v in s.items() if k != "creator"} for s in latest.values()]
        chunk, headers = self._paginate(statuses)
        return self._json(
            {
                "state": state,
                "statuses": chunk,
                "sha": sha,
                "total_count": len(statuses),
                "repository": self._repo_json(repo),
                "commit_url": f"{self.api}/repos/{repo.full_name}/commits/{sha}",
                "url": f"{self.api}/repos/{repo.full_name}/commits/{sha}/status",
            },
            headers=headers,
        )

    # ------------------------------------------------------------------ handlers: deployments

    def _workflow_run(self, repo: _Repo, run_id: str) -> dict[str, Any]:
        run = repo.workflow_runs.get(int(run_id))
        if run is None:
            raise ApiError(404, "Not Found")
        return run

    def _get_workflow_run(self, repo: _Repo, run_id: str) -> Response:
        run = self._workflow_run(repo, run_id)
        exclude = request.args.get("exclude_pull_requests") == "true"
        return self._json(self._workflow_run_json(repo, run, with_pulls=not exclude))

    def _review_custom_gate(self, repo: _Repo, run_id: str) -> Response:
        run = self._workflow_run(repo, run_id)
        body = self._body()
        name = body.get("environment_name")
        state = body.get("state")
        comment = body.get("comment")
        if not isinstance(name, str) or not name:
            raise ApiError(422, 'Invalid request.\n\n"environment_name" wasn\'t supplied.')
        if state is not None and state not in ("approved", "rejected"):
            raise ApiError(422, f"Invalid request.\n\n{state!r} is not a member of state.")
        if state is None and not comment:
            raise ApiError(422, 'Invalid request.\n\n"comment" wasn\'t supplied.')
        if comment is not None and not isinstance(comment, str):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/comment', it is not a string.")
        if comment is not None and len(comment) > PROGRESS_COMMENT_LIMIT:
            raise ApiError(
                422,
                f"Invalid request.\n\nOnly {PROGRESS_COMMENT_LIMIT} characters are allowed; "
                f"{len(comment)} were supplied.",
                [{"resource": "DeploymentProtectionRule", "field": "comment", "code": "too_long"}],
            )
        env = repo.environments.get(name)
        waiting = (
            env is not None
            and env["protection_rule_app"]
            and name not in run["decided"]
            and any(d["run_id"] == run["id"] and d["environment"] == name for d in repo.deployments.values())
        )
        if not waiting:
            raise ApiError(422, f"No pending deployment protection rule for environment {name!r} on this run.")
        if state is None:
            reports = run["progress"].get(name, 0)
            if reports >= PROGRESS_REPORTS_LIMIT:
                raise ApiError(
                    422, f"Only {PROGRESS_REPORTS_LIMIT} status reports are allowed per deployment protection rule."
                )
            run["progress"][name] = reports + 1
        else:
            run["decided"][name] = state
        repo.answers.append({"run_id": run["id"], "environment_name": name, "state": state, "comment": comment})
        return Response(status=204)

    def _deployment(self, repo: _Repo, deployment_id: str) -> dict[str, Any]:
        deployment = repo.deployments.get(int(deployment_id))
        if deployment is None:
            raise ApiError(404, "Not Found")
        return deployment

    def _list_deployments(self, repo: _Repo) -> Response:
        filters = {key: request.args.get(key) for key in ("sha", "ref", "environment")}
        task = request.args.get("task")
        found = [
            d
            for d in sorted(repo.deployments.values(), key=lambda d: -d["id"])
            if all(value is None or d[key] == value for key, value in filters.items())
            and (task is None or task == "deploy")
        ]
        chunk, headers = self._paginate(found)
        return self._json([self._deployment_json(repo, d) for d in chunk], headers=headers)

    def _get_deployment(self, repo: _Repo, deployment_id: str) -> Response:
        return self._json(self._deployment_json(repo, self._deployment(repo, deployment_id)))

    def _list_deployment_statuses(self, repo: _Repo, deployment_id: str) -> Response:
        deployment = self._deployment(repo, deployment_id)
        chunk, headers = self._paginate(list(reversed(deployment["statuses"])))
        return self._json([self._deployment_status_json(repo, deployment, s) for s in chunk], headers=headers)

    def _get_deployment_status(self, repo: _Repo, deployment_id: str, status_id: str) -> Response:
        deployment = self._deployment(repo, deployment_id)
        status = next((s for s in deployment["statuses"] if s["id"] == int(status_id)), None)
        if status is None:
            raise ApiError(404, "Not Found")
        return self._json(self._deployment_status_json(repo, deployment, status))

    def _create_deployment_status(self, repo: _Repo, deployment_id: str) -> Response:
        deployment = self._deployment(repo, deployment_id)
        body = self._body()
        if body.get("state") not in DEPLOYMENT_STATES:
            raise ApiError(
                422, "Validation Failed", [{"resource": "DeploymentStatus", "field": "state", "code": "invalid"}]
            )
        if len(body.get("description") or "") > 140:
            raise ApiError(
                422, "Validation Failed", [{"resource": "DeploymentStatus", "field": "description", "code": "too_long"}]
            )
        status = self._new_deployment_status(repo, deployment, body, f"{self.app_slug}[bot]")
        return self._json(self._deployment_status_json(repo, deployment, status), 201)

    def _get_environment(self, repo: _Repo, name: str) -> Response:
        env = repo.environments.get(name)
        if env is None:
            raise ApiError(404, "Not Found")
        return self._json(self._environment_json(repo, env))

    def _list_protection_rules(self, repo: _Repo, name: str) -> Response:
        env = repo.environments.get(name)
        if env is None:
            raise ApiError(404, "Not Found")
        rules = []
        if env["protection_rule_app"]:
            rules.append(
                {
                    "id": env["rule_id"],
                    "node_id": _node_id("DeploymentProtectionRule", env["rule_id"]),
                    "enabled": True,
                    "app": {
                        "id": self.app_id,
                        "node_id": _node_id("Integration", self.app_id),
                        "slug": self.app_slug,
                        "integration_url": f"{self.api}/apps/{self.app_slug}",
                    },
                }
            )
        return self._json({"total_count": len(rules), "custom_deployment_protection_rules": rules})

    # ------------------------------------------------------------------ introspection

    def _state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "repositories": {
                    repo.full_name: {
                        "default_branch": repo.default_branch,
                        "installation_id": repo.installation_id,
                        "branches": dict(repo.branches),
                        "commits": len(repo.commits),
                        "files": {branch: sorted(files) for branch, files in repo.files.items()},
                        "pull_requests": [
                            {
                                "number": pr.number,
                                "title": pr.title,
                                "state": pr.state,
                                "head": pr.head_ref,
                                "head_sha": repo.branches[pr.head_ref],
                                "base": pr.base_ref,
                                "author": pr.author,
                                "labels": list(pr.labels),
                                "reviews": [
                                    {"id": r.id, "login": r.login, "state": r.state, "commit_id": r.commit_id}
                                    for r in repo.reviews.get(pr.number, [])
                                ],
                            }
                            for pr in repo.pulls.values()
                        ],
                        "statuses": {sha: len(items) for sha, items in repo.statuses.items()},
                    }
                    for repo in self._repos.values()
                },
                "check_runs": [
                    {k: v for k, v in self._check_run_json(run).items() if k not in ("app",)}
                    for run in sorted(self._check_runs.values(), key=lambda r: r["id"])
                ],
                "deliveries": [
                    {"event": d["event"], "delivery_id": d["delivery_id"], "status": d["status"]}
                    for d in self.deliveries
                ],
            }


def _buffer_body(app: Callable[..., Any]) -> Callable[..., Any]:
    """Reads the request body into memory so both the recorder and the app below it can read it."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        return app(environ, start_response)

    return wrapper


def _worst(conclusions: Iterable[str | None]) -> str | None:
    order = ["failure", "timed_out", "cancelled", "action_required", "stale", "neutral", "skipped", "success"]
    present = [c for c in conclusions if c]
    return min(present, key=order.index) if present else None


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default
