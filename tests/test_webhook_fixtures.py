"""GitHub's own example payloads through the real endpoint, signed as GitHub signs them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import GITHUB_SECRET, LiveApp

from gating.app import ROUTER

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "github" / "webhooks").glob("*.json"))


def event_of(path: Path) -> str:
    return path.name.split(".")[0]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_example_payload_is_acknowledged_never_crashes(
    live_app: LiveApp, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = json.loads(path.read_text())
    response = live_app.github.deliver(event_of(path), payload, url=live_app.github_webhook, secret=GITHUB_SECRET)
    handled = bool(ROUTER.handlers(event_of(path), payload.get("action")))
    if event_of(path) == "ping":
        assert response.status_code == 200 and response.json()["status"] == "pong"
    elif handled:
        # Subscribed: accepted at once. The examples name repositories and installations this GitHub
        # does not have: nothing to act on, acknowledged and logged as such — never a crash.
        assert response.status_code == 202, response.text
        live_app.settle()
        status = live_app.services.deliveries.status(response.json()["delivery"])
        assert status == "completed"
        crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not crashes, [r.getMessage() for r in crashes]
    else:
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"


def test_example_payload_with_a_wrong_signature_is_refused(live_app: LiveApp) -> None:
    payload = json.loads((FIXTURES[0]).read_text())
    response = live_app.github.deliver(event_of(FIXTURES[0]), payload, url=live_app.github_webhook, secret="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "signature does not match: check GITHUB_WEBHOOK_SECRET"}


def test_signature_matches_githubs_documented_vector() -> None:
    from gating.intake.webhooks import signature_matches

    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_matches("It's a Secret to Everybody", b"Hello, World!", header)
    assert not signature_matches("It's a Secret to Everybody", b"Hello, World?", header)
