"""A dossier view never walks more of the chain than COUNTERSIGN_VIEW_VERIFY_ENTRIES: what is left goes to the
worker's extend_verification job, and until it has run the page says what is and is not verified, claiming
nothing it has not checked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import LiveApp
from sqlalchemy import text
from test_dossier import api, page, release

from gating.app import periodic_jobs
from gating.console.auth import create_token
from gating.ledger import LedgerEntryView
from gating.models import LedgerVerification
from gating.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Views verify two entries at most: a ledger of a few entries stands for one of millions."""
    return dataclasses.replace(settings, view_verify_entries=2)


@pytest.fixture
def token(live_app: LiveApp) -> str:
    return create_token(live_app.services.db, "auditor", datetime.now(UTC))


def extend_verification(app: LiveApp) -> None:
    """What the worker runs every minute."""
    (job,) = [job for job in periodic_jobs(app.services) if job.name == "extend_verification"]
    assert job.period == timedelta(minutes=1)
    job.run()


def another_decision(app: LiveApp, like: LedgerEntryView) -> int:
    """A deployment decision appended after the others, with the evidence of `like`."""
    with app.services.db.session() as session:
        entry = app.services.ledger.append(
            "deployment_decision",
            like.data,
            index={
                "repository": like.repository, "environment": like.environment, "deployment_id": 99,
                "sha": like.sha, "decision": like.decision,
            },
            session=session,
        )  # fmt: skip
        return entry.id


def verdict(html: str) -> str:
    start = html.index('<p class="answer"><span class="', html.index("5. "))
    return html[start : html.index("</p>", start)]


def holds(app: LiveApp, n: int) -> None:
    for i in range(n):
        app.services.ledger.append("legal_hold", {"reason": f"inquiry {i}"}, index={})


def test_a_first_view_of_a_long_chain_waits_for_the_worker_and_says_so(
    live_app: LiveApp, repo: str, token: str
) -> None:
    _sha, entry_id = release(live_app, repo)
    holds(live_app, 3)  # four entries: twice what a view verifies itself
    with live_app.services.db.engine.begin() as connection:  # as on a new install: never verified
        connection.execute(LedgerVerification.__table__.delete())

    found: dict[str, Any] = api(live_app, token, entry_id)["verification"]
    assert (found["how"], found["ok"], found["entry_verified"]) == ("pending", False, False)
    assert found["pending"] == {"reason": "the chain has not been verified yet", "entries": 4, "cache_failed": False}
    assert found["first_bad_sequence"] is None  # nothing found broken either
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert '<span class="warn">Not verified yet:</span> not yet: the chain has not been verified through this' in html
    assert "verified OK" not in html and "Ledger verified" not in html and "BROKEN" not in html
    assert "the worker verifies the 4 entries left" in html
    with live_app.services.db.session() as session:
        assert session.get(LedgerVerification, "") is None  # the view recorded nothing

    extend_verification(live_app)
    after: dict[str, Any] = api(live_app, token, entry_id)["verification"]
    assert (after["how"], after["ok"], after["entry_verified"], after["pending"]) == ("cached", True, True, None)
    assert after["last_full_verification"]["through_sequence"] == 4
    assert '<span class="ok">Ledger verified:</span>' in verdict(
        page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    )


def test_entries_past_the_verified_head_are_not_verified_until_the_worker_reaches_them(
    live_app: LiveApp, repo: str, token: str
) -> None:
    _sha, entry_id = release(live_app, repo)
    extend_verification(live_app)  # verified through entry 1
    first = live_app.services.ledger.get(entry_id)
    assert first is not None
    holds(live_app, 2)
    late_id = another_decision(live_app, first)  # entry 4: three past the verified head
    behind: dict[str, Any] = api(live_app, token, entry_id)["verification"]
    assert (behind["how"], behind["ok"], behind["entry_verified"]) == ("pending", True, True)
    assert behind["pending"]["entries"] == 3 and behind["verified_through"] == 1
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert '<span class="ok">Ledger verified:</span>' in verdict(html)
    assert "verified OK through entry 1; the entries after it are not verified yet" in html

    late: dict[str, Any] = api(live_app, token, late_id)["verification"]
    assert (late["how"], late["entry_verified"]) == ("pending", False)
    late_html = page(live_app, f"/deployments/{late_id}", auth=("auditor", token)).text
    assert '<span class="warn">Not verified yet:</span>' in verdict(late_html) and "Ledger verified" not in late_html

    extend_verification(live_app)
    assert api(live_app, token, late_id)["verification"]["entry_verified"] is True


def test_a_view_over_a_cached_result_that_no_longer_holds_shows_it_unverified(
    live_app: LiveApp, repo: str, token: str
) -> None:
    _sha, entry_id = release(live_app, repo)
    holds(live_app, 1)
    extend_verification(live_app)  # verified through entry 2
    holds(live_app, 2)
    with live_app.services.db.engine.begin() as connection:  # the last verified entry, edited since
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'inquiry 0', 'nothing') WHERE sequence = 2")
        )
    shown: dict[str, Any] = api(live_app, token, entry_id)["verification"]
    assert (shown["how"], shown["ok"], shown["entry_verified"]) == ("pending", False, False)
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert "not verified: entry 2, the last one verified, or the entries before it changed since" in html
    assert '<span class="bad">Ledger NOT VERIFIED:</span> no: the ledger is not verified through this entry' in html
    assert "verified OK" not in html and shown["pending"]["cache_failed"] is True

    extend_verification(live_app)  # the worker's full walk names the entry
    found: dict[str, Any] = api(live_app, token, entry_id)["verification"]
    assert (found["ok"], found["first_bad_sequence"]) == (False, 2)
    assert "broken at entry 2" in page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
