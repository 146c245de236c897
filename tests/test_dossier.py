"""The printable dossier page, the dashboard, Basic/bearer auth on HTML pages and `countersign export`, on ledger
entries written by the real deploy gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from conftest import LiveApp
from sqlalchemy import text
from test_deploy_gate_e2e import answers, approved, deploy, setup_release

from gating.cli import main
from gating.console.auth import create_token
from gating.models import Emergency
from gating.policy.answers import QUESTIONS

EVIL = "PAY-1 <script>alert('x')</script> refunds"


@pytest.fixture
def token(live_app: LiveApp) -> str:
    return create_token(live_app.services.db, "auditor", datetime.now(UTC))


def page(app: LiveApp, path: str, auth: Any = None, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return requests.get(app.url + path, params=params, auth=auth, headers=headers or {}, timeout=30)


def release(app: LiveApp, repo: str) -> tuple[str, int]:
    """One approved deployment through the live gate, with a commit message that tries to inject a script."""
    approved(app, "PAY-1")
    approved(app, "PAY-2")
    sha = setup_release(app, repo, ["PAY-2 payouts", EVIL])
    deploy(app, repo, sha)
    (answer,) = answers(app, repo)
    assert answer["state"] == "approved", answer["comment"]
    (entry,) = app.services.ledger.search(kind="deployment_decision", limit=10)
    return sha, entry.id


def test_dossier_page_answers_the_five_questions_and_escapes_evidence(live_app: LiveApp, repo: str, token: str) -> None:
    sha, entry_id = release(live_app, repo)
    response = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    positions = [html.index(f"{n}. {question}") for n, question in enumerate(QUESTIONS, 1)]
    assert positions == sorted(positions)  # the five questions, in order
    assert html.count("<h2>") == 5
    assert "<script" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "@media print" in html
    for key in ("PAY-1", "PAY-2"):
        assert f">{key}</a></td>" in html  # a ticket row, linked to Jira
    assert "Carol Approver" in html and sha in html and "build" in html
    assert "verified OK" in html and "Ledger verified" in html
    view = live_app.services.ledger.get(entry_id)
    assert view is not None and view.hash in html and view.prev_hash in html
    assert "approved" in html and "Evidence captured" in html and "Requested at" in html
    assert "before the deployment was requested" in html
    # The same page with a bearer token.
    bearer = page(live_app, f"/deployments/{entry_id}", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200 and bearer.text == html


def test_html_pages_need_a_token_and_ask_the_browser_for_it(live_app: LiveApp, token: str) -> None:
    for path in ("/", "/deployments/1"):
        for auth in (None, ("auditor", "cs_wrong"), ("auditor", "")):
            response = page(live_app, path, auth=auth)
            assert response.status_code == 401, (path, auth)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="Countersign"'
            assert token not in response.text
        assert page(live_app, path, token=token).status_code == 401  # never a token in the URL
    assert page(live_app, "/", auth=("anyone", token)).status_code == 200
    assert page(live_app, "/deployments/999", auth=("anyone", token)).status_code == 404


def test_a_tampered_entry_shows_as_broken(live_app: LiveApp, repo: str, token: str) -> None:
    _sha, entry_id = release(live_app, repo)
    with live_app.services.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'Carol Approver', 'Mallory') WHERE id = :id"),
            {"id": entry_id},
        )
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert "Ledger BROKEN" in html and "broken at entry 1" in html and "verified OK" not in html
    dossier = requests.get(
        f"{live_app.url}/api/v1/deployments/{entry_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()
    assert dossier["verification"]["ok"] is False and dossier["verification"]["entry_hash_matches"] is False
    assert dossier["answers"]["integrity"]["entry_verified"] is False


def test_dashboard_lists_decisions_emergencies_and_searches(live_app: LiveApp, repo: str, token: str) -> None:
    sha, entry_id = release(live_app, repo)
    now = datetime.now(UTC)
    with live_app.services.db.session() as session:
        session.add(
            Emergency(
                ledger_entry_id=entry_id, repository="acme/legacy", environment="production", deployment_id=7,
                installation_id=1, sha="c" * 40, tickets="OPS-1", people="[]",
                deadline=now - timedelta(hours=1), created_at=now - timedelta(hours=73),
            )
        )  # fmt: skip
    auth = ("auditor", token)
    html = page(live_app, "/", auth=auth).text
    assert f'href="/deployments/{entry_id}"' in html and sha[:7] in html and repo in html
    assert '<tr class="overdue">' in html and "OVERDUE" in html and "OPS-1" in html
    assert '<form class="search" method="get" action="/">' in html
    assert sha[:7] in page(live_app, "/", auth=auth, ticket="PAY-1", decision="approved").text
    filtered = page(live_app, "/", auth=auth, repo="acme/nothing-here").text
    assert "No deployment decisions match this search" in filtered
    assert 'value="acme/nothing-here"' in filtered
    bad = page(live_app, "/", auth=auth, decision="<b>maybe</b>")
    assert bad.status_code == 400 and "&lt;b&gt;maybe&lt;/b&gt;" in bad.text and "<b>maybe" not in bad.text


def export(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner().invoke(main, ["export", *args], catch_exceptions=False)


def test_export_one_dossier_as_json_and_html(
    live_app: LiveApp, repo: str, token: str, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _sha, entry_id = release(live_app, repo)
    api = requests.get(
        f"{live_app.url}/api/v1/deployments/{entry_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()

    result = export(database_url, monkeypatch, "--id", str(entry_id), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == api

    out = tmp_path / "dossier.html"
    result = export(database_url, monkeypatch, "--id", str(entry_id), "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == page(live_app, f"/deployments/{entry_id}", auth=("a", token)).text

    missing = export(database_url, monkeypatch, "--id", "999")
    assert missing.exit_code == 1 and "no deployment decision with ledger entry id 999" in missing.output


def test_export_an_audit_period_as_a_json_array(
    live_app: LiveApp, repo: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha, entry_id = release(live_app, repo)
    today = datetime.now(UTC).date()
    result = export(
        database_url, monkeypatch, "--repo", repo, "--since", (today - timedelta(days=30)).isoformat(),
        "--until", today.isoformat(), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (dossier,) = json.loads(result.stdout)
    assert dossier["id"] == entry_id and dossier["evidence"]["sha"] == sha and dossier["verification"]["ok"] is True
    empty = export(database_url, monkeypatch, "--repo", "acme/other", "--since", "2020-01-01")
    assert json.loads(empty.stdout) == []
    bad = CliRunner().invoke(main, ["export", "--repo", repo, "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output
    html_many = CliRunner().invoke(main, ["export", "--repo", repo, "--format", "html"])
    assert html_many.exit_code == 2 and "HTML exports one dossier" in html_many.output


def test_the_dossier_names_each_pr_and_who_merged_it(live_app: LiveApp, repo: str, token: str) -> None:
    from conftest import ALICE, CAROL
    from test_deploy_gate_e2e import ledger_entries

    approved(live_app, "PAY-1")
    setup_release(live_app, repo, [], build=None)
    live_app.github.add_commit(repo, "feature/pay-1", "refunds", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/pay-1", title="PAY-1: refunds", author="alice")
    sha = live_app.github.merge_pull_request(repo, number, by=CAROL)
    live_app.github.add_check_run(repo, sha, "build")
    deploy(live_app, repo, sha)
    assert answers(live_app, repo)[0]["state"] == "approved"
    entry_id = live_app.services.ledger.search(kind="deployment_decision", limit=1)[0].id
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert f"<tr><td>#{number}</td><td>PAY-1: refunds</td><td>alice</td><td>carol</td><td>2</td>" in html
    assert "(attempt 1)" in html
    assert ledger_entries(live_app)[-1]["payload"]["pull_requests"][0]["merged_by"] == "carol"
