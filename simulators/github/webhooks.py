"""Webhook payloads as GitHub builds them, and their signed delivery to the app."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from simulators.github.render import (
    check_run_json,
    check_suite_json,
    deployment_json,
    node_id,
    pull_json,
    repo_json,
    review_json,
    simple_commit,
    user_json,
)
from simulators.github.state import _Repo, iso, now

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator


def deliver(
    sim: GitHubSimulator,
    event: str,
    payload: dict[str, Any],
    *,
    delivery_id: str | None = None,
    secret: str | None = None,
    url: str | None = None,
    redelivery: bool = False,
) -> requests.Response:
    target = url or sim.webhook_url
    if not target:
        raise ValueError("no webhook URL: pass url= or construct the simulator with webhook_url")
    body = json.dumps(payload, separators=(",", ":")).encode()
    key = (secret if secret is not None else sim.webhook_secret).encode()
    delivery = delivery_id or str(uuid.uuid4())
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/6a1e9f3",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": str(sim.hook_id),
        "X-GitHub-Hook-Installation-Target-ID": str(sim.app_id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
    }
    started = now()
    try:
        response = requests.post(target, data=body, headers=headers, timeout=30)
    except requests.RequestException:
        record_attempt(sim, delivery, event, payload, started, "failed to connect", 0, redelivery=redelivery)
        raise
    status = "OK" if 200 <= response.status_code < 300 else f"Invalid HTTP Response: {response.status_code}"
    record_attempt(sim, delivery, event, payload, started, status, response.status_code, redelivery=redelivery)
    with sim.store.lock:
        sim.deliveries.append(
            {"event": event, "delivery_id": delivery, "payload": payload, "status": response.status_code}
        )
    return response


def record_attempt(
    sim: GitHubSimulator,
    guid: str,
    event: str,
    payload: dict[str, Any],
    started: datetime,
    status: str,
    status_code: int,
    *,
    redelivery: bool,
) -> None:
    """What GitHub keeps of each attempt, for the app's `GET /app/hook/deliveries` (its redelivery recipe)."""
    repository = payload["repository"] if isinstance(payload.get("repository"), dict) else {}
    installation = payload["installation"] if isinstance(payload.get("installation"), dict) else {}
    with sim.store.lock:
        sim.hook_deliveries.append(
            {
                "id": sim.store.next_id("hook_delivery", 10_000_000_000),
                "guid": guid,
                "delivered_at": iso(started),
                "redelivery": redelivery,
                "duration": round((now() - started).total_seconds(), 3),
                "status": status,
                "status_code": status_code,
                "event": event,
                "action": payload.get("action") if isinstance(payload.get("action"), str) else None,
                "installation_id": installation.get("id"),
                "repository_id": repository.get("id"),
                "throttled_at": None,
                "payload": payload,
            }
        )


def installation_ref(repo: _Repo) -> dict[str, Any]:
    return {"id": repo.installation_id, "node_id": node_id("Installation", repo.installation_id)}


def envelope(sim: GitHubSimulator, repo: _Repo, action: str, sender: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "action": action,
        "repository": repo_json(sim, repo),
        "sender": sender or user_json(sim, repo.owner),
        "installation": installation_ref(repo),
    }


def pull_request_payload(
    sim: GitHubSimulator, full_name: str, number: int, action: str, **extra: Any
) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        pr = repo.pulls[number]
        payload = envelope(sim, repo, action, extra.pop("sender", None) or user_json(sim, pr.author))
        payload["number"] = number
        payload["pull_request"] = pull_json(sim, repo, pr, webhook=True)
        payload.update(extra)
        return payload


def review_payload(sim: GitHubSimulator, full_name: str, number: int, review_id: int) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        pr = repo.pulls[number]
        review = next(r for r in repo.reviews[number] if r.id == review_id)
        payload = envelope(sim, repo, "submitted", user_json(sim, review.login))
        payload["review"] = review_json(sim, repo, pr, review)
        payload["pull_request"] = pull_json(sim, repo, pr, webhook=True)
        return payload


def check_run_payload(sim: GitHubSimulator, full_name: str, check_run_id: int, action: str) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        run = sim.store.check_runs[check_run_id]
        payload = envelope(sim, repo, action, None)
        check_run = check_run_json(sim, run)
        check_run["check_suite"] = check_suite_json(sim, repo, run["head_sha"])
        payload["check_run"] = check_run
        return payload


def check_suite_payload(sim: GitHubSimulator, full_name: str, head_sha: str, action: str) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        payload = envelope(sim, repo, action, None)
        payload["check_suite"] = check_suite_json(sim, repo, head_sha, full=True)
        return payload


def merge_group_payload(
    sim: GitHubSimulator, full_name: str, *, head_sha: str, base_sha: str, head_ref: str, base_ref: str
) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        commit = repo.commits.get(head_sha)
        if commit is not None:
            head_commit = simple_commit(commit)
        else:
            # The queue's merge commit need not exist in the simulated repository.
            head_commit = {
                "id": head_sha,
                "tree_id": hashlib.sha1(head_sha.encode()).hexdigest(),
                "message": "Merge queue entry",
                "timestamp": iso(now()),
                "author": {"name": "GitHub", "email": "noreply@github.com"},
                "committer": {"name": "GitHub", "email": "noreply@github.com"},
            }
        payload = envelope(sim, repo, "checks_requested", None)
        payload["merge_group"] = {
            "head_sha": head_sha,
            "head_ref": head_ref,
            "base_sha": base_sha,
            "base_ref": base_ref,
            "head_commit": head_commit,
        }
        return payload


def protection_rule_payload(
    sim: GitHubSimulator, full_name: str, deployment_id: int, *, null_deployment: bool, callback_url: str | None
) -> dict[str, Any]:
    with sim.store.lock:
        repo = sim.store.repo(full_name)
        deployment = repo.deployments[deployment_id]
        run = repo.workflow_runs[deployment["run_id"]]
        callback = callback_url or (
            f"{sim.api}/repos/{repo.full_name}/actions/runs/{run['id']}/deployment_protection_rule"
        )
        pulls = [
            pull_json(sim, repo, pr, webhook=True)
            for pr in repo.pulls.values()
            if pr.state == "open" and repo.head_sha(pr) == deployment["sha"]
        ]
        return {
            "action": "requested",
            "environment": deployment["environment"],
            "event": run["event"],
            "sha": deployment["sha"],
            "ref": deployment["ref"],
            "deployment_callback_url": callback,
            "deployment": None if null_deployment else deployment_json(sim, repo, deployment),
            "pull_requests": pulls,
            "repository": repo_json(sim, repo),
            "installation": installation_ref(repo),
            "sender": user_json(sim, deployment["creator"]),
        }
