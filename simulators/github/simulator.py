"""The simulated GitHub: its state API for tests, the demo and benchmarks, and the server that answers its REST API."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, Response, request

from simulators.github import webhooks
from simulators.github.auth import Credential, authenticate, issue_token
from simulators.github.errors import ApiError, error_body
from simulators.github.render import (
    APP_EVENTS,
    APP_PERMISSIONS,
    HTML,
    app_json,
    check_run_json,
    commit_json,
    deployment_json,
    label_json,
    node_id,
    pull_json,
    pulls_for_sha,
    repo_json,
    review_json,
    simple_commit,
    user_json,
)
from simulators.github.state import (
    CHECK_STATUSES,
    CONCLUSIONS,
    DEPLOYMENT_STATES,
    REVIEW_STATES,
    STATUS_STATES,
    Person,
    Store,
    _PullRequest,
    _Repo,
    _Review,
    iso,
    now,
)
from simulators.http import Faults, RecordingMiddleware, ServerHandle, serve

SUMMARY_LIMIT = 65_535
PR_COMMITS_LIMIT = 250
COMPARE_UNPAGED_LIMIT = 250
MAX_PER_PAGE = 100
PROGRESS_REPORTS_LIMIT = 10  # per deployment (a run and an environment), like GitHub
PROGRESS_COMMENT_LIMIT = 1_024

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
        self.store = Store()
        self._handle: ServerHandle | None = None
        self.url: str | None = None
        self.deliveries: list[dict[str, Any]] = []
        self.flask_app = self._build_app()
        self.recorder = RecordingMiddleware(self.flask_app.wsgi_app, self.faults, error_body)
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

    # ------------------------------------------------------------------ state API

    def add_repository(
        self, full_name: str, *, default_branch: str = "main", installation_id: int = 1, private: bool = False
    ) -> str:
        owner, name = full_name.split("/", 1)
        with self.store.lock:
            repo = _Repo(
                id=self.store.next_id("repo", 700_000_000),
                owner=owner,
                name=name,
                default_branch=default_branch,
                installation_id=installation_id,
                private=private,
                created_at=now(),
            )
            self.store.repos[full_name.lower()] = repo
            repo.files[default_branch] = {}
            ghost = Person(name=owner, email=f"{owner}@users.noreply.github.com", login=owner)
            sha = self.store.make_commit(repo, "Initial commit", ghost, ghost, [])
            repo.branches[default_branch] = sha
            return sha

    def put_file(self, full_name: str, path: str, content: str, branch: str | None = None) -> None:
        with self.store.lock:
            repo = self.store.repo(full_name)
            branch = branch or repo.default_branch
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[repo.default_branch]
            if branch not in repo.files:
                repo.files[branch] = dict(repo.files.get(repo.default_branch, {}))
            repo.files[branch][path.strip("/")] = content

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
        with self.store.lock:
            repo = self.store.repo(full_name)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[repo.default_branch]
                repo.files.setdefault(branch, dict(repo.files.get(repo.default_branch, {})))
            parent_list = list(parents) if parents is not None else [repo.branches[branch]]
            sha = self.store.make_commit(repo, message, author, committer or author, parent_list)
            repo.branches[branch] = sha
            return sha

    def set_branch(self, full_name: str, branch: str, sha: str) -> None:
        with self.store.lock:
            repo = self.store.repo(full_name)
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
        with self.store.lock:
            repo = self.store.repo(full_name)
            if head not in repo.branches or base not in repo.branches:
                raise KeyError(f"both branches must exist: head {head!r}, base {base!r}")
            number = self.store.next_id(f"issue:{repo.full_name}", 0)
            repo.pulls[number] = _PullRequest(
                number=number,
                id=self.store.next_id("pull", 1_900_000_000),
                title=title,
                body=body,
                author=author,
                head_ref=head,
                base_ref=base,
                labels=list(labels),
                draft=draft,
            )
            repo.reviews[number] = []
            payload = self.pull_request_payload(full_name, number, "opened", sender=user_json(self, author))
        self._auto_deliver("pull_request", payload)
        return number

    def push(
        self, full_name: str, branch: str, message: str, *, author: Person, committer: Person | None = None
    ) -> str:
        with self.store.lock:
            repo = self.store.repo(full_name)
            before = repo.branches.get(branch) or repo.branches[repo.default_branch]
            sha = self.add_commit(full_name, branch, message, author=author, committer=committer)
            sender = user_json(self, author.login or repo.owner)
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
        with self.store.lock:
            repo = self.store.repo(full_name)
            pr = repo.pulls[number]
            changes: dict[str, Any] = {}
            if title is not None and title != pr.title:
                changes["title"] = {"from": pr.title}
                pr.title = title
            if body is not None and body != pr.body:
                changes["body"] = {"from": pr.body}
                pr.body = body
            pr.updated_at = now()
            if changes:
                payloads.append(self.pull_request_payload(full_name, number, "edited", changes=changes))
            if labels is not None:
                new = list(labels)
                for added in [name for name in new if name not in pr.labels]:
                    pr.labels.append(added)
                    payloads.append(
                        self.pull_request_payload(full_name, number, "labeled", label=label_json(self, repo, added))
                    )
                for removed in [name for name in pr.labels if name not in new]:
                    pr.labels.remove(removed)
                    payloads.append(
                        self.pull_request_payload(full_name, number, "unlabeled", label=label_json(self, repo, removed))
                    )
            if state is not None and state != pr.state:
                if state not in ("open", "closed"):
                    raise ValueError(f"state must be 'open' or 'closed', not {state!r}")
                pr.state = state
                pr.closed_at = now() if state == "closed" else None
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
        with self.store.lock:
            repo = self.store.repo(full_name)
            pr = repo.pulls[number]
            review = _Review(
                id=self.store.next_id("review", 80_000_000),
                login=login,
                state=state,
                commit_id=commit_id or repo.branches[pr.head_ref],
                submitted_at=now(),
            )
            repo.reviews[number].append(review)
            payload = self.review_payload(full_name, number, review.id)
        self._auto_deliver("pull_request_review", payload)
        return review.id

    def check_runs(self, full_name: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            repo = self.store.repo(full_name)
            return [
                copy.deepcopy(check_run_json(self, run))
                for run in sorted(self.store.check_runs.values(), key=lambda r: r["id"])
                if run["repo"] == repo.full_name.lower() and (head_sha is None or run["head_sha"] == head_sha)
            ]

    def pull_request(self, full_name: str, number: int) -> dict[str, Any]:
        with self.store.lock:
            repo = self.store.repo(full_name)
            return pull_json(self, repo, repo.pulls[number])

    def expire_tokens(self) -> None:
        with self.store.lock:
            for token in self.store.tokens.values():
                token.revoked = True

    # ------------------------------------------------------------------ state API: deployments

    def add_environment(self, full_name: str, name: str, *, protection_rule_app: bool = True) -> None:
        """An environment; with `protection_rule_app` our app is one of its custom deployment protection rules."""
        with self.store.lock:
            repo = self.store.repo(full_name)
            self.store.environment(repo, name)["protection_rule_app"] = protection_rule_app

    def add_workflow_run(
        self, full_name: str, *, head_sha: str, head_branch: str, name: str = "deploy", event: str = "push"
    ) -> int:
        with self.store.lock:
            repo = self.store.repo(full_name)
            return self.store.new_workflow_run(repo, head_sha, head_branch, name, event, repo.owner)

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
        with self.store.lock:
            repo = self.store.repo(full_name)
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {full_name}")
            env = self.store.environment(repo, environment)
            if run_id is None:
                run_id = self.store.new_workflow_run(repo, sha, ref, "deploy", "push", creator)
            elif run_id not in repo.workflow_runs:
                raise KeyError(f"unknown workflow run {run_id} in {full_name}")
            created = now()
            deployment_id = self.store.next_id("deployment", 1_200_000_000)
            repo.deployments[deployment_id] = {
                "id": deployment_id,
                "sha": sha,
                "ref": ref,
                "environment": environment,
                "creator": creator,
                "run_id": run_id,
                "created": created,
                "updated": created,
                "statuses": [],
            }
            payload = None
            if env["protection_rule_app"] and deliver and self.webhook_url:
                payload = self.protection_rule_payload(full_name, deployment_id)
        if payload is not None:
            self.deliver("deployment_protection_rule", payload)
        return deployment_id

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
        with self.store.lock:
            repo = self.store.repo(full_name)
            if head_sha not in repo.commits:
                raise KeyError(f"unknown commit {head_sha} in {full_name}")
            started = iso(now())
            run: dict[str, Any] = {
                "id": self.store.next_id("check_run", 10_000_000_000),
                "repo": repo.full_name.lower(),
                "head_sha": head_sha,
                "name": name,
                "external_id": "",
                "details_url": f"{HTML}/{repo.full_name}/actions/runs",
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "started_at": started,
                "completed_at": started if status == "completed" else None,
                "output": {"title": None, "summary": None, "text": None},
                "annotations_count": 0,
                "suite_id": self.store.check_suite_id(repo, head_sha, None if app_slug == self.app_slug else app_slug),
                "created": now(),
                "app_slug": app_slug,
            }
            self.store.check_runs[run["id"]] = run
            return int(run["id"])

    def add_status(self, full_name: str, sha: str, context: str, state: str) -> None:
        """A commit status another integration posted."""
        if state not in STATUS_STATES:
            raise ValueError(f"state must be one of {STATUS_STATES}, not {state!r}")
        with self.store.lock:
            repo = self.store.repo(full_name)
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {full_name}")
            self._new_status(repo, sha, state, context, None, None, "ci-bot")

    def deployment_answers(self, full_name: str) -> list[dict[str, Any]]:
        """Every accepted POST on .../actions/runs/{run_id}/deployment_protection_rule, in order
        (refused ones are only in `recorder.requests`)."""
        with self.store.lock:
            return [dict(answer) for answer in self.store.repo(full_name).answers]

    def set_deployment_status(self, full_name: str, deployment_id: int, state: str) -> None:
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"state must be one of {DEPLOYMENT_STATES}, not {state!r}")
        with self.store.lock:
            repo = self.store.repo(full_name)
            self.store.new_deployment_status(repo.deployments[deployment_id], {"state": state}, "github-actions[bot]")

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
        """Posts `payload` as GitHub does, signed with the webhook secret (or `secret`), to `url` or the webhook URL."""
        return webhooks.deliver(self, event, payload, delivery_id=delivery_id, secret=secret, url=url)

    def pull_request_payload(self, full_name: str, number: int, action: str, **extra: Any) -> dict[str, Any]:
        return webhooks.pull_request_payload(self, full_name, number, action, **extra)

    def review_payload(self, full_name: str, number: int, review_id: int) -> dict[str, Any]:
        return webhooks.review_payload(self, full_name, number, review_id)

    def check_run_payload(self, full_name: str, check_run_id: int, action: str = "rerequested") -> dict[str, Any]:
        return webhooks.check_run_payload(self, full_name, check_run_id, action)

    def check_suite_payload(self, full_name: str, head_sha: str, action: str = "rerequested") -> dict[str, Any]:
        return webhooks.check_suite_payload(self, full_name, head_sha, action)

    def merge_group_payload(
        self, full_name: str, *, head_sha: str, base_sha: str, head_ref: str, base_ref: str = "refs/heads/main"
    ) -> dict[str, Any]:
        return webhooks.merge_group_payload(
            self, full_name, head_sha=head_sha, base_sha=base_sha, head_ref=head_ref, base_ref=base_ref
        )

    def protection_rule_payload(
        self, full_name: str, deployment_id: int, *, null_deployment: bool = False, callback_url: str | None = None
    ) -> dict[str, Any]:
        """The `deployment_protection_rule` `requested` payload for a deployment, for delivery by hand."""
        return webhooks.protection_rule_payload(
            self, full_name, deployment_id, null_deployment=null_deployment, callback_url=callback_url
        )

    # ------------------------------------------------------------------ JSON shapes

    def _deployment_status_json(
        self, repo: _Repo, deployment: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        api = f"{self.api}/repos/{repo.full_name}"
        deployment_url = f"{api}/deployments/{deployment['id']}"
        return {
            "url": f"{deployment_url}/statuses/{status['id']}",
            "id": status["id"],
            "node_id": node_id("DeploymentStatus", status["id"]),
            "state": status["state"],
            "creator": user_json(self, status["creator"]),
            "description": status["description"],
            "environment": status["environment"],
            "target_url": status["target_url"],
            "created_at": iso(status["created"]),
            "updated_at": iso(status["created"]),
            "deployment_url": deployment_url,
            "repository_url": api,
            "environment_url": status["environment_url"],
            "log_url": status["log_url"],
            "performed_via_github_app": None,
        }

    def _environment_json(self, repo: _Repo, env: dict[str, Any]) -> dict[str, Any]:
        name = env["name"]
        return {
            "id": env["id"],
            "node_id": node_id("Environment", env["id"]),
            "name": name,
            "url": f"{self.api}/repos/{repo.full_name}/environments/{name}",
            "html_url": f"{HTML}/{repo.full_name}/deployments/activity_log?environments_filter={name}",
            "created_at": iso(env["created"]),
            "updated_at": iso(env["created"]),
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
        repository = repo_json(self, repo)
        actor = user_json(self, run["actor"])
        status, conclusion = self._run_state(repo, run)
        return {
            "id": run_id,
            "name": run["name"],
            "node_id": node_id("WorkflowRun", run_id),
            "check_suite_id": run["suite_id"],
            "check_suite_node_id": node_id("CheckSuite", run["suite_id"]),
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
            "pull_requests": pulls_for_sha(self, repo, run["head_sha"], minimal=True) if with_pulls else [],
            "created_at": iso(run["created"]),
            "updated_at": iso(run["created"]),
            "actor": actor,
            "triggering_actor": actor,
            "run_started_at": iso(run["created"]),
            "jobs_url": f"{api}/actions/runs/{run_id}/jobs",
            "logs_url": f"{api}/actions/runs/{run_id}/logs",
            "check_suite_url": f"{api}/check-suites/{run['suite_id']}",
            "artifacts_url": f"{api}/actions/runs/{run_id}/artifacts",
            "cancel_url": f"{api}/actions/runs/{run_id}/cancel",
            "rerun_url": f"{api}/actions/runs/{run_id}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{api}/actions/workflows/{run['workflow_id']}",
            "head_commit": simple_commit(commit),
            "repository": repository,
            "head_repository": repository,
            "head_repository_id": repo.id,
        }

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

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Credential, _Handler]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        table: list[tuple[str, str, Credential, _Handler]] = [
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
                installation = authenticate(self, auth, request.headers.get("Authorization", ""))
                params = match.groupdict()
                with self.store.lock:
                    if "owner" in params:
                        repo = self.store.repos.get(f"{params.pop('owner')}/{params.pop('repo')}".lower())
                        if repo is None or (installation is not None and repo.installation_id != installation):
                            raise ApiError(404, "Not Found")
                        params["repo"] = repo
                    return handler(**params)
            # GitHub answers 404 for unknown paths and for methods a path does not take.
            raise ApiError(404, "Not Found")
        except ApiError as error:
            body = error_body(error.status, error.message)
            if error.errors:
                body["errors"] = error.errors
            return self._json(body, error.status)

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
        return self._json(app_json(self))

    def _create_token(self, installation_id: str) -> Response:
        installation = int(installation_id)
        with self.store.lock:
            if not any(r.installation_id == installation for r in self.store.repos.values()):
                raise ApiError(404, "Not Found")
            body = request.get_json(silent=True) or {}
            permissions = body.get("permissions") or dict(APP_PERMISSIONS)
            token, expires = issue_token(self.store, installation, permissions)
        return self._json(
            {
                "token": token,
                "expires_at": iso(expires),
                "permissions": permissions,
                "repository_selection": "selected",
            },
            201,
        )

    def _get_repo_installation(self, repo: _Repo) -> Response:
        account = user_json(self, repo.owner)
        created = iso(datetime(2024, 1, 2, tzinfo=UTC))
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
        return self._json({**repo_json(self, repo), "network_count": 0, "subscribers_count": 0})

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
        return self._json([pull_json(self, repo, pr) for pr in chunk], headers=headers)

    def _pull(self, repo: _Repo, number: str) -> _PullRequest:
        pr = repo.pulls.get(int(number))
        if pr is None:
            raise ApiError(404, "Not Found")
        return pr

    def _get_pull(self, repo: _Repo, number: str) -> Response:
        return self._json(pull_json(self, repo, self._pull(repo, number)))

    def _list_pull_commits(self, repo: _Repo, number: str) -> Response:
        pr = self._pull(repo, number)
        shas = repo.only_in(repo.head_sha(pr), repo.branches[pr.base_ref])[:PR_COMMITS_LIMIT]
        chunk, headers = self._paginate(shas)
        return self._json([commit_json(self, repo, repo.commits[s]) for s in chunk], headers=headers)

    def _list_reviews(self, repo: _Repo, number: str) -> Response:
        pr = self._pull(repo, number)
        chunk, headers = self._paginate(list(repo.reviews.get(pr.number, [])))
        return self._json([review_json(self, repo, pr, r) for r in chunk], headers=headers)

    def _list_commits(self, repo: _Repo) -> Response:
        ref = request.args.get("sha") or repo.default_branch
        head = repo.resolve(ref)
        if head is None:
            raise ApiError(404, "Not Found")
        history = repo.history(head)
        chunk, headers = self._paginate(history)
        return self._json([commit_json(self, repo, repo.commits[s]) for s in chunk], headers=headers)

    def _get_commit(self, repo: _Repo, ref: str) -> Response:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self._json(commit_json(self, repo, repo.commits[sha], detail=True))

    def _pulls_for_commit(self, repo: _Repo, ref: str) -> Response:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        chunk, headers = self._paginate(pulls_for_sha(self, repo, sha, minimal=False))
        return self._json(chunk, headers=headers)

    def _compare(self, repo: _Repo, basehead: str) -> Response:
        if "..." not in basehead:
            raise ApiError(404, "Not Found")
        base_ref, head_ref = basehead.split("...", 1)
        base, head = repo.resolve(base_ref), repo.resolve(head_ref)
        if base is None or head is None:
            raise ApiError(404, "Not Found")
        ahead = repo.only_in(head, base)
        behind = repo.only_in(base, head)
        merge_base = repo.merge_base(base, head)
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
                "base_commit": commit_json(self, repo, repo.commits[base]),
                "merge_base_commit": commit_json(self, repo, repo.commits[merge_base]),
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "commits": [commit_json(self, repo, repo.commits[s]) for s in chunk],
                "files": [],
            },
            headers=headers,
        )

    def _get_contents(self, repo: _Repo, path: str) -> Response:
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
            run["completed_at"] = body.get("completed_at") or run.get("completed_at") or iso(now())
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
            "id": self.store.next_id("check_run", 10_000_000_000),
            "repo": repo.full_name.lower(),
            "head_sha": head_sha,
            "name": body["name"],
            "external_id": body.get("external_id") or "",
            "details_url": body.get("details_url") or f"{HTML}/{repo.full_name}/runs",
            "status": "queued",
            "conclusion": None,
            "started_at": iso(now()),
            "completed_at": None,
            "output": {"title": None, "summary": None, "text": None},
            "annotations_count": 0,
            "suite_id": self.store.check_suite_id(repo, head_sha),
            "created": now(),
        }
        self._check_fields(body, run)
        self._apply_check_fields(run, body)
        self.store.check_runs[run["id"]] = run
        return self._json(check_run_json(self, run), 201)

    def _run(self, repo: _Repo, check_run_id: str) -> dict[str, Any]:
        run = self.store.check_runs.get(int(check_run_id))
        if run is None or run["repo"] != repo.full_name.lower():
            raise ApiError(404, "Not Found")
        return run

    def _get_check_run(self, repo: _Repo, check_run_id: str) -> Response:
        return self._json(check_run_json(self, self._run(repo, check_run_id)))

    def _update_check_run(self, repo: _Repo, check_run_id: str) -> Response:
        run = self._run(repo, check_run_id)
        body = self._body()
        self._check_fields(body, run)
        self._apply_check_fields(run, body)
        return self._json(check_run_json(self, run))

    def _list_check_runs_for_ref(self, repo: _Repo, ref: str) -> Response:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        name = request.args.get("check_name")
        status = request.args.get("status")
        runs = sorted(
            (r for r in self.store.check_runs.values() if r["repo"] == repo.full_name.lower() and r["head_sha"] == sha),
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
            {"total_count": len(runs), "check_runs": [check_run_json(self, r) for r in chunk]}, headers=headers
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
        status_id = self.store.next_id("status", 30_000_000_000)
        moment = iso(now())
        creator = user_json(self, creator_login)
        creator["type"] = "Bot" if creator_login.endswith("[bot]") else "User"
        status = {
            "url": f"{self.api}/repos/{repo.full_name}/statuses/{sha}",
            "avatar_url": creator["avatar_url"],
            "id": status_id,
            "node_id": node_id("StatusContext", status_id),
            "state": state,
            "description": description,
            "target_url": target_url,
            "context": context,
            "created_at": moment,
            "updated_at": moment,
            "creator": creator,
        }
        repo.statuses.setdefault(sha, []).append(status)
        return status

    def _list_statuses(self, repo: _Repo, ref: str) -> Response:
        sha = repo.resolve(ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        chunk, headers = self._paginate(list(reversed(repo.statuses.get(sha, []))))
        return self._json(chunk, headers=headers)

    def _combined_status(self, repo: _Repo, ref: str) -> Response:
        sha = repo.resolve(ref)
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
                "repository": repo_json(self, repo),
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
        return self._json([deployment_json(self, repo, d) for d in chunk], headers=headers)

    def _get_deployment(self, repo: _Repo, deployment_id: str) -> Response:
        return self._json(deployment_json(self, repo, self._deployment(repo, deployment_id)))

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
        status = self.store.new_deployment_status(deployment, body, f"{self.app_slug}[bot]")
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
                    "node_id": node_id("DeploymentProtectionRule", env["rule_id"]),
                    "enabled": True,
                    "app": {
                        "id": self.app_id,
                        "node_id": node_id("Integration", self.app_id),
                        "slug": self.app_slug,
                        "integration_url": f"{self.api}/apps/{self.app_slug}",
                    },
                }
            )
        return self._json({"total_count": len(rules), "custom_deployment_protection_rules": rules})

    # ------------------------------------------------------------------ introspection

    def _state(self) -> dict[str, Any]:
        with self.store.lock:
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
                    for repo in self.store.repos.values()
                },
                "check_runs": [
                    {k: v for k, v in check_run_json(self, run).items() if k not in ("app",)}
                    for run in sorted(self.store.check_runs.values(), key=lambda r: r["id"])
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


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default
