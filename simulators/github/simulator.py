"""The simulated GitHub: its state API for tests, the demo and benchmarks, and the server that answers its REST API."""

from __future__ import annotations

import contextlib
import copy
import io
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import requests
from flask import Flask

from simulators.github import webhooks
from simulators.github.errors import error_body, secondary_rate_limit_body
from simulators.github.render import HTML, check_run_json, label_json, pull_json, user_json
from simulators.github.routes import register
from simulators.github.routes.common import EXTENSION
from simulators.github.routes.statuses import new_status
from simulators.github.state import (
    CHECK_STATUSES,
    DEPLOYMENT_STATES,
    REVIEW_STATES,
    STATUS_STATES,
    WEB_FLOW,
    OAuthClient,
    Person,
    Store,
    _PullRequest,
    _Repo,
    _Review,
    iso,
    now,
)
from simulators.http import Fault, Faults, RecordingMiddleware, Served


class GitHubSimulator(Served):
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
        self.deliveries: list[dict[str, Any]] = []
        # Every attempt to deliver, as GitHub lists them for the app (GET /app/hook/deliveries), newest last.
        self.hook_deliveries: list[dict[str, Any]] = []
        self.redeliveries_requested: list[int] = []
        self.oauth: OAuthClient | None = None  # the app's OAuth client, once `register_oauth_client` is called
        self.flask_app = Flask("github-simulator")
        self.flask_app.extensions[EXTENSION] = self
        register(self.flask_app)
        self.recorder = RecordingMiddleware(self.flask_app.wsgi_app, self.faults, error_body)
        self.concurrency = Concurrency(self.store)
        self.wsgi = self.concurrency.wrap(_buffer_body(self.recorder))

    # ------------------------------------------------------------------ server

    @property
    def api(self) -> str:
        # URLs in answers point back at this server: PyGithub refuses to follow links to other hosts.
        return self.url or "https://api.github.com"

    # ------------------------------------------------------------------ faults GitHub is known for

    def secondary_rate_limit(
        self,
        fragment: str = "",
        *,
        status: int = 403,
        retry_after: int | None = 1,
        method: str | None = None,
        times: int = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> Fault:
        """Answer the next matching requests as GitHub does on a secondary rate limit (unapplied).

        GitHub sends 403 (sometimes 429) with a retry-after header and its "You have exceeded a
        secondary rate limit" message; `retry_after=None` leaves the header out, as GitHub sometimes does.
        """
        headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4321", "X-RateLimit-Resource": "core"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return self.faults.answer(
            fragment, status, body=secondary_rate_limit_body(), headers=headers, method=method, times=times, when=when
        )

    def primary_rate_limit_exhausted(
        self, fragment: str = "", *, reset_in: int = 3, method: str | None = None, times: int = 1
    ) -> Fault:
        """Answer the next matching requests as GitHub does once the installation's hourly quota is spent.

        403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch seconds) `reset_in` seconds ahead,
        and GitHub's "API rate limit exceeded" message; nothing is applied.
        """
        reset = int(time.time()) + reset_in
        headers = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": "5000",
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Resource": "core",
        }
        body = {
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
        }
        return self.faults.answer(fragment, 403, body=body, headers=headers, method=method, times=times)

    def write_attempts(self, fragment: str = "") -> list[str]:
        """Every content-creating request received (refused ones too), as "METHOD path status"."""
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.recorder.requests
            if r.method in ("POST", "PATCH", "PUT", "DELETE") and fragment in r.path
        ]

    # ------------------------------------------------------------------ state API: sign-in with GitHub

    def register_oauth_client(self, client_id: str, client_secret: str, callback_url: str) -> None:
        """The app's client id and secret, and the callback URL set on its settings page."""
        self.oauth = OAuthClient(client_id, client_secret, callback_url)

    def sign_in_as(self, login: str, name: str | None = None) -> None:
        """Who approves on GitHub's authorize page from now on."""
        assert self.oauth is not None, "register_oauth_client() first"
        with self.store.lock:
            self.oauth.signed_in_as = login
            if name:
                self.oauth.names[login] = name

    def grant_read(self, login: str, *full_names: str) -> None:
        """`login` can read these repositories (GitHub lists them for the user's token where the app is installed)."""
        assert self.oauth is not None, "register_oauth_client() first"
        with self.store.lock:
            self.oauth.readers.setdefault(login, set()).update(name.lower() for name in full_names)

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
        signed: bool = False,
    ) -> str:
        """A commit on `branch`; `signed`: GitHub reports its signature verified."""
        with self.store.lock:
            repo = self.store.repo(full_name)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches[repo.default_branch]
                repo.files.setdefault(branch, dict(repo.files.get(repo.default_branch, {})))
            parent_list = list(parents) if parents is not None else [repo.branches[branch]]
            sha = self.store.make_commit(repo, message, author, committer or author, parent_list, verified=signed)
            repo.branches[branch] = sha
            return sha

    def merge_pull_request(self, full_name: str, number: int, *, by: Person, method: str = "merge") -> str:
        """Merge a PR as GitHub's Merge button does, by `method` (merge, squash or rebase); the base's new tip.

        GitHub makes the new commits itself: committed by `web-flow`, signed, and associated with the PR
        (`merge_commit_sha`, and the commit's PR listing). A merge commit's author is whoever pressed Merge.
        """
        if method not in ("merge", "squash", "rebase"):
            raise ValueError(f"method must be merge, squash or rebase, not {method!r}")
        with self.store.lock:
            repo = self.store.repo(full_name)
            pr = repo.pulls[number]
            if pr.state != "open":
                raise ValueError(f"#{number} is {pr.state}")
            base, head = repo.branches[pr.base_ref], repo.head_sha(pr)
            branch_commits = [repo.commits[sha] for sha in repo.only_in(head, base)]  # oldest first
            author = next((p for p in (c.author for c in branch_commits) if p.login == pr.author), by)
            if method == "merge":
                message = f"Merge pull request #{number} from {repo.owner}/{pr.head_ref}\n\n{pr.title}"
                tip = self.store.make_commit(repo, message, by, WEB_FLOW, [base, head], verified=True)
                introduced = [c.sha for c in branch_commits] + [tip]
            elif method == "squash":
                body = "\n\n".join(f"* {c.message}" for c in branch_commits)
                tip = self.store.make_commit(
                    repo, f"{pr.title} (#{number})\n\n{body}", author, WEB_FLOW, [base], verified=True
                )
                introduced = [tip]
            else:
                tip, introduced = base, []
                for commit in branch_commits:
                    tip = self.store.make_commit(repo, commit.message, commit.author, WEB_FLOW, [tip], verified=True)
                    introduced.append(tip)
            repo.branches[pr.base_ref] = tip
            moment = now()
            pr.state, pr.closed_at, pr.merged_at, pr.updated_at = "closed", moment, moment, moment
            pr.merged_by, pr.merge_commit_sha, pr.introduced = by.login, tip, introduced
            payload = self.pull_request_payload(
                full_name, number, "closed", sender=user_json(self, by.login or pr.author)
            )
        self._auto_deliver("pull_request", payload)
        return tip

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

    def tokens_minted(self, installation_id: int | None = None) -> int:
        """How many installation tokens were issued (for one installation, or for all)."""
        with self.store.lock:
            return sum(1 for t in self.store.tokens.values() if installation_id in (None, t.installation_id))

    def tokens_last(self, lifetime: timedelta) -> None:
        """Issue tokens that last `lifetime` from now on (GitHub's last an hour)."""
        with self.store.lock:
            self.store.token_lifetime = lifetime

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

    def queue_merge_group(
        self, full_name: str, numbers: list[int], *, queued_by: Person, base: str = "main"
    ) -> tuple[str, dict[str, Any]]:
        """GitHub's merge queue: a temporary branch from the base with one merge commit per PR, in queue order,
        made and signed by GitHub. Returns the group's head and its `merge_group` `checks_requested` payload."""
        with self.store.lock:
            repo = self.store.repo(full_name)
            base_sha = tip = repo.branches[base]
            for number in numbers:
                pr = repo.pulls[number]
                message = f"Merge pull request #{number} from {repo.owner}/{pr.head_ref}\n\n{pr.title}"
                tip = self.store.make_commit(
                    repo, message, queued_by, WEB_FLOW, [tip, repo.head_sha(pr)], verified=True
                )
                pr.queued.append(tip)
            ref = f"gh-readonly-queue/{base}/pr-{numbers[-1]}-{base_sha}"
            repo.branches[ref] = tip
        payload = self.merge_group_payload(
            full_name, head_sha=tip, base_sha=base_sha, head_ref=f"refs/heads/{ref}", base_ref=f"refs/heads/{base}"
        )
        return tip, payload

    def rerun_workflow(self, full_name: str, run_id: int, *, creator: str, deliver: bool = True) -> int:
        """ "Re-run jobs": the same run id, the next attempt, a new deployment to each environment it deployed to,
        each asking our app again. Returns the newest new deployment's id."""
        with self.store.lock:
            repo = self.store.repo(full_name)
            run = repo.workflow_runs[run_id]
            earlier = [d for d in repo.deployments.values() if d["run_id"] == run_id]
            if not earlier:
                raise KeyError(f"workflow run {run_id} deployed nothing")
            run["attempt"] += 1
            run["decided"], run["progress"] = {}, {}
            targets = {d["environment"]: d for d in earlier}
        newest = 0
        for environment, deployment in targets.items():
            newest = self.create_deployment(
                full_name,
                ref=deployment["ref"],
                sha=deployment["sha"],
                environment=environment,
                creator=creator,
                run_id=run_id,
                deliver=deliver,
            )
        return newest

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
            new_status(self, repo, sha, state, context, None, None, "ci-bot")

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
            # The app is down: GitHub records the failed attempt (see hook_deliveries) and moves on.
            with contextlib.suppress(requests.RequestException):
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


class Concurrency:
    """The most requests each installation had in flight at once (by its token; "app" for the app's JWT)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.in_flight: dict[int | str, int] = {}
        self.most: dict[int | str, int] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.most.clear()

    def _who(self, environ: dict[str, Any]) -> int | str:
        scheme, _, credential = str(environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
        with self.store.lock:
            token = self.store.tokens.get(credential)
        if token is not None:
            return token.installation_id
        return "app" if scheme.lower() == "bearer" else "anonymous"

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if str(environ.get("PATH_INFO", "")).startswith("/_sim/"):
                return app(environ, start_response)
            who = self._who(environ)
            with self._lock:
                self.in_flight[who] = self.in_flight.get(who, 0) + 1
                self.most[who] = max(self.most.get(who, 0), self.in_flight[who])
            try:
                # The body is produced here, under the count: a request is in flight until it is answered.
                return list(app(environ, start_response))
            finally:
                with self._lock:
                    self.in_flight[who] -= 1

        return counting


def _buffer_body(app: Callable[..., Any]) -> Callable[..., Any]:
    """Reads the request body into memory so both the recorder and the app below it can read it."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        return app(environ, start_response)

    return wrapper
