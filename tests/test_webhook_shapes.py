"""Every payload shape GitHub's webhook descriptions allow is handled, or acknowledged as not actionable."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from builders import NOW
from conftest import GITHUB_SECRET, LiveApp
from test_deploy_gate_e2e import answers, approved, setup_release

from gating.app import ROUTER
from gating.gates.render import render_deployment_comment
from gating.policy.pull_request import error_verdict

SPEC = json.loads((Path(__file__).parent / "fixtures" / "github" / "webhooks-openapi-subset.json").read_text())


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def minimal(schema: dict[str, Any], depth: int = 0) -> Any:
    """The smallest instance the schema allows: required properties only, null wherever null is allowed."""
    schema = resolve(schema)
    if schema.get("nullable") or "null" in (schema.get("type") if isinstance(schema.get("type"), list) else ()):
        return None
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [resolve(option) for option in schema[key]]
            nulls = [o for o in options if o.get("type") == "null" or o.get("nullable")]
            return None if nulls else minimal(options[0], depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = minimal(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: minimal(properties.get(name, {}), depth + 1) for name in schema.get("required", ())}
    return {"string": "x", "integer": 1, "number": 1, "boolean": False, "array": []}.get(kind or "")


def routed_webhooks() -> list[tuple[str, str | None, dict[str, Any]]]:
    """(event, action, minimal payload) for each described webhook that Countersign subscribes to."""
    found = []
    for name, description in SPEC["webhooks"].items():
        schema = resolve(description["post"]["requestBody"]["content"]["application/json"]["schema"])
        actions = resolve(schema.get("properties", {}).get("action", {})).get("enum") or [None]
        action = actions[0]
        event = (name.removesuffix("-" + action.replace("_", "-")) if action else name).replace("-", "_")
        if ROUTER.handlers(event, action):
            found.append((event, action, minimal(schema)))
    return found


WEBHOOKS = routed_webhooks()


def test_the_descriptions_cover_every_gate() -> None:
    events = {event for event, _action, _payload in WEBHOOKS}
    assert {"pull_request", "pull_request_review", "check_run", "check_suite", "merge_group"} <= events
    assert "deployment_protection_rule" in events


@pytest.mark.parametrize(("event", "action", "payload"), WEBHOOKS, ids=lambda v: v if isinstance(v, str) else "")
def test_the_smallest_payload_gitHub_allows_is_acknowledged_not_failed(
    live_app: LiveApp, event: str, action: str | None, payload: dict[str, Any]
) -> None:
    response = live_app.deliver(event, payload)
    assert response.status_code == 202, response.text
    live_app.settle()
    # Nothing to act on (no installation to answer as): recorded as done, not as a failure to retry.
    assert live_app.services.deliveries.status(response.json()["delivery"]) == "completed"


def signed_post(app: LiveApp, body: bytes, event: str = "pull_request") -> requests.Response:
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature}
    return requests.post(app.github_webhook, data=body, headers=headers, timeout=30)


def test_a_signed_body_nested_ten_thousand_deep_is_a_bad_request(live_app: LiveApp) -> None:
    body = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    response = signed_post(live_app, body)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not a JSON object"}


def test_a_null_deployment_without_a_sha_is_decided_on_its_workflow_runs_commit(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    deployment_id = live_app.github.create_deployment(
        repo, ref="main", sha=sha, environment="production", creator="dave", deliver=False
    )
    payload = live_app.github.protection_rule_payload(repo, deployment_id, null_deployment=True)
    del payload["sha"], payload["ref"]  # older payloads carry neither: only the workflow run names the commit
    assert live_app.deliver("deployment_protection_rule", payload).status_code == 202
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert answer["comment"].startswith(f"Countersign approved this deployment to production of {sha[:7]}.")


def test_a_comment_without_a_commit_says_so() -> None:
    verdict = error_verdict("request", "The deployment names no commit", "workflow run 9 was not found", NOW)
    comment = render_deployment_comment("production", "", verdict, "/deployments/3", 3)
    assert comment == (
        "Countersign rejected this deployment to production (the commit to deploy could not be determined).\n"
        "- workflow run 9 was not found\n"
        "Dossier: /deployments/3 (ledger entry 3)"
    )
