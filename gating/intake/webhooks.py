"""POST /webhooks/github and /webhooks/jira: verify, record, hand off, answer at once."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from gating.intake.deliveries import Delivery, payload_digest, queue_for
from gating.intake.jobs import delivery_context
from gating.logs import bound
from gating.metrics import DELIVERIES
from gating.services import Services

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a `sha256=<hex>` HMAC header over the raw body."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None
    return payload if isinstance(payload, dict) else None


def _services() -> Services:
    services: Services = current_app.extensions["countersign"]
    return services


@bp.post("/webhooks/github")
def github_webhook() -> Any:
    services = _services()
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH answers 413 before this
    header = request.headers.get("X-Hub-Signature-256")
    if not header:
        log.warning("webhook.unsigned", extra={"source": "github"})
        return _error(400, "missing X-Hub-Signature-256 header")
    if not signature_matches(services.settings.github_webhook_secret, body, header):
        log.warning(
            "webhook.bad_signature", extra={"source": "github", "delivery": request.headers.get("X-GitHub-Delivery")}
        )
        return _error(401, "signature does not match: check GITHUB_WEBHOOK_SECRET")
    event = request.headers.get("X-GitHub-Event")
    delivery_id = request.headers.get("X-GitHub-Delivery")
    if not event or not delivery_id:
        return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    payload = _parse(body)
    if payload is None:
        return _error(400, "body is not a JSON object")
    if event == "ping":
        return jsonify(status="pong", zen=payload.get("zen")), 200
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    return _accept(
        services, Delivery(f"github:{delivery_id}", "github", event, action, payload, services.clock()), body
    )


@bp.post("/webhooks/jira")
def jira_webhook() -> Any:
    services = _services()
    secret = services.settings.jira_webhook_secret
    if not secret:
        return _error(403, "Jira webhooks are not accepted: set JIRA_WEBHOOK_SECRET and give Jira the same secret")
    body = request.get_data(cache=False)
    header = request.headers.get("X-Hub-Signature")
    if not header:
        return _error(400, "missing X-Hub-Signature header")
    if not signature_matches(secret, body, header):
        log.warning("webhook.bad_signature", extra={"source": "jira"})
        return _error(401, "signature does not match: check JIRA_WEBHOOK_SECRET")
    payload = _parse(body)
    if payload is None:
        return _error(400, "body is not a JSON object")
    event = str(payload.get("webhookEvent") or "")
    if not event:
        return _error(400, "body has no webhookEvent")
    # Jira keeps this identifier across its retries; without it the body identifies the delivery.
    identifier = request.headers.get("X-Atlassian-Webhook-Identifier") or payload_digest(body)
    return _accept(services, Delivery(f"jira:{identifier}", "jira", event, None, payload, services.clock()), body)


def _accept(services: Services, delivery: Delivery, body: bytes) -> Any:
    if not services.router.handlers(delivery.event, delivery.action):
        DELIVERIES.labels(delivery.source, delivery.event, "ignored").inc()
        return jsonify(status="ignored", event=delivery.event, action=delivery.action), 200
    with bound(**delivery_context(delivery)):
        # Stored with its payload before the answer: from here on a worker will answer it, whatever happens.
        if not services.deliveries.accept(delivery, payload_digest(body)):
            log.info("webhook.duplicate")
            DELIVERIES.labels(delivery.source, delivery.event, "duplicate").inc()
            return jsonify(status="duplicate", delivery=delivery.id), 200
        log.info("webhook.accepted")  # before the hand-off: an inline processor runs the job at once
        DELIVERIES.labels(delivery.source, delivery.event, "accepted").inc()
        services.processor.notify(queue_for(delivery.event))
    return jsonify(status="accepted", delivery=delivery.id), 202
