"""The printable dossier page, the dashboard, Basic/bearer auth on HTML pages and `countersign export`, on ledger
entries written by the real deploy gate."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from conftest import ALICE, LiveApp
from sqlalchemy import text
from test_deploy_gate_e2e import answers, approved, deploy, setup_release

from gating.cli import main
from gating.console.auth import create_token
from gating.console.rendering import render_dossier
from gating.ledger import entry_hash
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
    assert "Approved" in html and "Evaluated at" in html and "Requested at" in html
    assert "every ticket was approved before the request, by someone other than its authors" in html
    # The same page with a bearer token (the relative times aside, which move on between the two requests).
    bearer = page(live_app, f"/deployments/{entry_id}", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200 and _steady(bearer.text) == _steady(html)


def _glance(html: str) -> list[str]:
    """The five answers at a glance, as plain text."""
    box = html[html.index('<div class="glance">') :]
    box = box[: box.index("</div>")]
    return [unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in re.findall(r"<li>(.*?)</li>", box, re.S)]


def _steady(html: str) -> str:
    """A page without what changes from one request to the next: the produced-at time and relative times."""
    html = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC( \([^)]*\))?", "TIME", html)
    return re.sub(r"(nothing was appended since|continued from|every entry recomputed)[^<]*", "HOW", html)


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
    exported = json.loads(result.stdout)
    # The export recomputes the whole chain itself; how the API's view verified it is the only difference.
    how = ("how", "entries_checked", "verified_at", "last_full_verification")
    for document in (exported, api):
        for name in how:
            document["verification"].pop(name)
    assert exported == api

    out = tmp_path / "dossier.html"
    result = export(database_url, monkeypatch, "--id", str(entry_id), "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    viewed = page(live_app, f"/deployments/{entry_id}", auth=("a", token)).text
    # The same content: the five answers at a glance (the fifth says when the page's own view last verified in full).
    assert _glance(html)[:4] == _glance(viewed)[:4] and api["entry"]["hash"] in html and "Produced at" in html
    assert [html.index(q) for q in QUESTIONS] == sorted(html.index(q) for q in QUESTIONS)

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
    pull_url = f"{live_app.github.url}/{repo}/pull/{number}"
    assert f"| #{number} | PAY-1: refunds | alice | carol | 2 commits | none |" in text_rows(html)
    assert f'<a href="{pull_url}">#{number}</a>' in html  # in the PR table and beside each of its commits
    assert "(attempt 1)" in html
    assert ledger_entries(live_app)[-1]["payload"]["pull_requests"][0]["merged_by"] == "carol"


# -- the auditor's console: the five answers in words, the rules, links, and the cached verification ----------------


def text_rows(html: str) -> str:
    """The page as text, one table row per line with cells joined by ' | ': what a reader sees, without markup."""
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    html = re.sub(r"<tr[^>]*>", "\n| ", html)
    html = re.sub(r"</t[dh]>", " | ", html)
    html = re.sub(r"</(p|li|h1|h2|h3|div|dd|caption)>|<br>", "\n", html)
    text = unescape(re.sub(r"<[^>]+>", "", html))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def api(app: LiveApp, token: str, entry_id: int) -> dict[str, Any]:
    response = requests.get(
        f"{app.url}/api/v1/deployments/{entry_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def latest_entry(app: LiveApp) -> int:
    return app.services.ledger.search(kind="deployment_decision", limit=1)[0].id


def approved_at(app: LiveApp, key: str, at: datetime, by: str = "acc-carol") -> None:
    app.jira.add_ticket(key, f"{key} work", status="In Review")
    app.jira.transition(key, "Approved", by=by, at=at)


def test_an_approved_dossier_answers_the_five_questions_in_words(live_app: LiveApp, repo: str, token: str) -> None:
    # Approved 3 h 12 min (and some seconds) before the deployment is requested below.
    approved_at(live_app, "PAY-1", datetime.now(UTC) - timedelta(hours=3, minutes=12, seconds=30))
    approved(live_app, "PAY-2")
    sha = setup_release(live_app, repo, ["PAY-1 refunds", "PAY-2 payouts"])
    deployment = deploy(live_app, repo, sha)
    assert answers(live_app, repo)[0]["state"] == "approved"
    entry_id = latest_entry(live_app)
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    text = text_rows(html)

    glance = _glance(html)
    assert glance[0] == "2 tickets: PAY-1 and PAY-2."
    assert glance[1] == "every ticket was approved before the request, by someone other than its authors."
    assert glance[2] == "2 commits: each maps to an approved ticket."
    assert glance[3] == "yes: 1 required check succeeded before the decision."
    assert glance[4].startswith("yes: this entry's hash matches its content and the chain verifies through it")
    # The same answers open their sections, in the questions' order.
    sections = [text.index(f"{n}. {q}") for n, q in enumerate(QUESTIONS, 1)]
    answers_in_sections = [text.index(answer, where) for answer, where in zip(glance, sections, strict=True)]
    assert answers_in_sections == sorted(answers_in_sections)

    assert re.search(
        r"\| PAY-1 \| Carol Approver \| [0-9-]{10} [0-9:]{8} UTC \| approved 3 h 12 min before the request \|", text
    )
    assert "| PAY-2 | Carol Approver |" in text and "before the request | Jira status change |" in text
    assert re.search(r"Requested at\n?\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((just now|\d+ seconds? ago)\)", text)
    assert "Decision" in text and "Approved" in text and "failed" not in text.split("1. ")[0]
    # Every rule, with its outcome, in words.
    for rule in (
        "| Tickets approved in Jira | passed | 2 tickets in an approved status with a recorded approval |",
        "| Every commit maps to a ticket | passed | "
        "2 commits: each names a ticket, or came with a pull request that does |",
        "| Separation of duties | passed | 2 tickets approved by someone who is none of its authors or committers |",
        "| Required CI checks | passed | build succeeded |",
        "| The requester approved none of the tickets | passed | "
        "dave requested the deployment and approved none of its tickets |",
    ):
        assert rule in text, rule
    assert "Range: 2 commits since the last successful deployment to production that GitHub reports, " in text
    # Committers beside authors.
    assert (
        "| PAY-1 refunds | Alice Author (alice, alice@example.com) | Alice Author (alice, alice@example.com) | none "
        "| PAY-1 | PAY-1 |" in text
    )

    # Links to what the evidence names: the commits, the run, the environment's deployments, the check, the tickets.
    web = f"{live_app.github.url}/{repo}"
    evidence = api(live_app, token, entry_id)["evidence"]
    check_url = evidence["checks"][0]["raw"]["html_url"]
    for href in (
        f"{web}/commit/{sha}",
        f"{web}/actions/runs/{evidence['workflow_run_id']}/attempts/1",
        f"{web}/deployments/production",
        check_url,
        f"{live_app.jira.url}/browse/PAY-1",
    ):
        assert f'href="{href}"' in html, href
    for commit in evidence["commits"]:
        assert f'href="{web}/commit/{commit["sha"]}"' in html
    assert f"deployment {deployment}" in text
    assert set(re.findall(r'href="([^"]+)"', html)) <= {
        "/", f"{web}/commit/{sha}", *(f"{web}/commit/{c['sha']}" for c in evidence["commits"]),
        f"{web}/actions/runs/{evidence['workflow_run_id']}/attempts/1", f"{web}/deployments/production",
        check_url, f"{live_app.jira.url}/browse/PAY-1", f"{live_app.jira.url}/browse/PAY-2",
    }  # fmt: skip

    # The ledger proof, and when the chain was last verified in full.
    entry = evidence and api(live_app, token, entry_id)["entry"]
    assert f"| Entry hash (SHA-256) | {entry['hash']} |" in text
    assert f"| Previous entry hash | {entry['prev_hash']} |" in text
    assert "| Signature | unsigned entry |" in text and "| This entry | verified |" in text
    assert re.search(r"\| Last verified in full \| [0-9-]{10} [0-9:]{8} UTC \([^)]*\), through entry 1: OK \|", text)
    assert_no_internal_codes(text)


def assert_no_internal_codes(text: str) -> None:
    for code in (
        "required_checks", "traceability", "separation_of_duties", "last_successful", "last_approved",
        "first_deployment", "check_run", "changelog", "deployment_decision", "None", "True", "False", "(s)",
    ):  # fmt: skip
        assert code not in text, code


def test_a_rejected_dossier_names_its_failing_rules_first(live_app: LiveApp, repo: str, token: str) -> None:
    approved(live_app, "PAY-1")
    approved(live_app, "PAY-2", by="acc-alice")  # Alice approves her own change
    approved_at(live_app, "PAY-3", datetime.now(UTC) + timedelta(minutes=5, seconds=30))  # after the request
    live_app.jira.add_ticket("PAY-4", "Not yet", status="In Progress")
    sha = setup_release(
        live_app, repo, ["PAY-1 refunds", "PAY-2 payouts", "PAY-3 fees", "PAY-4 later"], build="failure"
    )
    deploy(live_app, repo, sha)
    assert answers(live_app, repo)[0]["state"] == "rejected"
    entry_id = latest_entry(live_app)
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    text = text_rows(html)

    # Where the eye lands: the failing rules, first and highlighted, before the questions.
    box = text[text.index("Rejected: 3 rules failed.") : text.index("The five questions at a glance")]
    assert "Tickets approved in Jira: PAY-4 is In Progress; it needs to be moved to Approved in Jira" in box
    assert "Separation of duties: PAY-2: Alice Author approved it but is also the author of" in box
    assert "Required CI checks: build has not succeeded (failure)" in box
    assert '<div class="failing-rules">' in html and '<tr class="failing">' in html
    rules = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.endswith(" |") and (
        " | failed | " in line or " | passed | " in line)]  # fmt: skip
    assert rules[:3] == ["Tickets approved in Jira", "Separation of duties", "Required CI checks"]
    assert rules[3:] == ["Every commit maps to a ticket", "The requester approved none of the tickets"]

    glance = _glance(html)
    assert glance[0] == "4 tickets: PAY-1, PAY-2, PAY-3 and PAY-4."
    assert glance[1] == "no: PAY-3 and PAY-4 were not approved before the request; PAY-2 failed separation of duties."
    assert glance[2] == "4 commits: 2 commits do not map to an approved ticket."
    assert glance[3] == "no: build had not succeeded."
    # PAY-3 passed the gate (it was approved when evaluated), and its approval after the request is highlighted.
    late = re.search(
        r"\| PAY-3 \| Carol Approver \| [0-9-]{10} [0-9:]{8} UTC \| (approved 5 min( \d+ s)? after the request) \|",
        text,
    )
    assert late, text
    assert f'<td data-label="Against the request" class="timing bad">{late.group(1)}</td>' in html
    assert "| PAY-4 | nobody | not approved | not approved | no approval recorded |" in text
    assert "| build | any app | build has not succeeded (failure) | build by github-actions: failure |" in text
    assert_no_internal_codes(text)


def test_a_self_approval_shows_the_comparison_identity_by_identity(live_app: LiveApp, repo: str, token: str) -> None:
    approved(live_app, "PAY-2", by="acc-alice")
    sha = setup_release(live_app, repo, ["PAY-2 payouts"])
    deploy(live_app, repo, sha, creator="bob")
    assert answers(live_app, repo)[0]["state"] == "rejected"
    text = text_rows(page(live_app, f"/deployments/{latest_entry(live_app)}", auth=("auditor", token)).text)
    sod = text[text.index("Separation of duties\nPAY-2") :]
    assert sod.startswith("Separation of duties\nPAY-2: failed\nPAY-2: Alice Author approved it but is also the author")
    assert "Approver in Jira: Alice Author (accountId acc-alice, e-mail alice@example.com). Compared with:" in sod
    mapping = "the mapping `{0}: acc-{0}` in .github/countersign.yml"
    assert f"| the deployment requester | bob | {mapping.format('bob')} | different people |" in sod
    short, alice = sha[:7], "Alice Author (alice, alice@example.com)"
    for role in ("author", "committer"):
        row = f"| the {role} of {short} | {alice} | {mapping.format('alice')} | the same person |"
        assert row in sod, row


def test_a_dossier_without_a_recorded_mapping_says_so(live_app: LiveApp, repo: str, token: str) -> None:
    """An entry written before the identity mapping was recorded: no comparison is guessed."""
    _sha, entry_id = release(live_app, repo)
    dossier = api(live_app, token, entry_id)
    del dossier["evidence"]["identities"]
    html = render_dossier(dossier, now=datetime.now(UTC))
    text = text_rows(html)
    assert "not recorded (this entry predates recording the identity mapping) | not recorded |" in text
    assert "different people" not in text and "the same person" not in text
    # Without GitHub's address configured, no GitHub link is made up; the recorded Jira and check URLs remain.
    assert "/commit/" not in html and f"{live_app.jira.url}/browse/PAY-1" in html


def test_the_range_names_the_deployment_it_starts_from(live_app: LiveApp, repo: str, token: str) -> None:
    approved(live_app, "PAY-1")
    first_sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    first = deploy(live_app, repo, first_sha)
    answers(live_app, repo)
    live_app.github.set_deployment_status(repo, first, "success")
    for message in ("PAY-1 more", "PAY-1 again"):
        sha = live_app.github.add_commit(repo, "main", message, author=ALICE)
    live_app.github.add_check_run(repo, sha, "build")
    deploy(live_app, repo, sha)
    answers(live_app, repo, count=2)
    text = text_rows(page(live_app, f"/deployments/{latest_entry(live_app)}", auth=("auditor", token)).text)
    assert re.search(
        f"Range: 2 commits since the last deployment to production, {first_sha[:7]}, approved "
        r"(just now|\d+ seconds? ago) and reported deployed by GitHub\.",
        text,
    ), text


def test_a_second_view_continues_the_verification_instead_of_recomputing_the_chain(
    live_app: LiveApp, repo: str, token: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sha, entry_id = release(live_app, repo)
    first = api(live_app, token, entry_id)["verification"]
    assert (first["how"], first["entries_checked"], first["ok"]) == ("full", 1, True)
    assert first["last_full_verification"]["through_sequence"] == 1

    second = api(live_app, token, entry_id)["verification"]
    assert (second["how"], second["entries_checked"], second["ok"]) == ("cached", 0, True)  # nothing re-read
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert "nothing was appended since the last verification" in html

    live_app.services.ledger.append("legal_hold", {"reason": "an inquiry"}, index={})
    third = api(live_app, token, entry_id)["verification"]
    assert (third["how"], third["entries_checked"], third["count"]) == ("incremental", 1, 2)
    assert third["last_full_verification"] == first["last_full_verification"]  # the full one is still the first
    live_app.services.ledger.append("legal_hold", {"reason": "another"}, index={})
    assert (
        "continued from the last verification: 1 entry appended since was checked"
        in page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    )

    # `countersign verify` recomputes every entry and becomes the last full verification.
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["verify"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    after = api(live_app, token, entry_id)["verification"]
    assert after["how"] == "cached" and after["last_full_verification"]["through_sequence"] == 3


def test_tampering_inside_the_cached_range_is_found_in_full_and_an_appended_one_incrementally(
    live_app: LiveApp, repo: str, token: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sha, entry_id = release(live_app, repo)
    assert api(live_app, token, entry_id)["verification"]["ok"] is True
    ledger = live_app.services.ledger
    ledger.append("legal_hold", {"reason": "first"}, index={})
    ledger.append("legal_hold", {"reason": "second"}, index={})
    assert api(live_app, token, entry_id)["verification"]["how"] == "incremental"

    # An entry appended after the cached head, edited: the incremental walk reads it and fails.
    ledger.append("legal_hold", {"reason": "third"}, index={})
    with live_app.services.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'third', 'THIRD') WHERE sequence = 4")
        )
    caught = api(live_app, token, entry_id)["verification"]
    assert (caught["how"], caught["ok"], caught["first_bad_sequence"]) == ("incremental", False, 4)
    with live_app.services.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'THIRD', 'third') WHERE sequence = 4")
        )
    repaired = api(live_app, token, entry_id)["verification"]
    assert (repaired["how"], repaired["ok"]) == ("full", True)  # a broken result is recomputed until it verifies

    # An entry inside the cached range, edited and rehashed in place: found by the full verification.
    with live_app.services.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'first', 'FIRST') WHERE sequence = 2")
        )
        row = connection.execute(text("SELECT prev_hash, payload FROM ledger_entries WHERE sequence = 2")).one()
        connection.execute(
            text("UPDATE ledger_entries SET hash = :h WHERE sequence = 2"),
            {"h": entry_hash(row.prev_hash, row.payload)},
        )
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["verify"], catch_exceptions=False)
    assert result.exit_code == 1 and "ledger BROKEN at entry 3" in result.output
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    assert "broken at entry 3" in html
    assert re.search(
        r"Last verified in full</th><td[^>]*>[^<]*, through entry 2: <span class=\"bad\">BROKEN</span>", html
    )


def test_the_page_reflows_at_390_pixels_and_prints_cleanly(live_app: LiveApp, repo: str, token: str) -> None:
    _sha, entry_id = release(live_app, repo)
    html = page(live_app, f"/deployments/{entry_id}", auth=("auditor", token)).text
    css = html[html.index("<style>", html.index("<body>")) : html.index("</style>", html.index("<body>"))]
    narrow = css[css.index("@media (max-width: 40rem)") :]
    assert "table.stack td { border: 0;" in narrow and "content: attr(data-label)" in narrow
    assert "display: block" in narrow and "overflow-wrap: anywhere" in css
    printing = css[css.index("@media print") :]
    assert "@page" in printing and ".no-print { display: none; }" in printing and "break-after: avoid" in printing
    assert '<nav class="no-print">' in html and re.search(r"Produced at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: list[str] = []
            self.unlabelled: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "table":
                self.tables.append(found.get("class") or "")
            if tag == "td" and not found.get("data-label"):
                self.unlabelled.append(str(self.getpos()))

    cells = Cells()
    cells.feed(html)
    assert len(cells.tables) >= 7 and all("stack" in table.split() for table in cells.tables), cells.tables
    assert cells.unlabelled == []


def test_the_daily_job_verifies_the_ledger_in_full(live_app: LiveApp, repo: str, token: str) -> None:
    from gating.app import periodic_jobs

    _sha, entry_id = release(live_app, repo)
    first = api(live_app, token, entry_id)["verification"]["last_full_verification"]
    live_app.services.ledger.append("legal_hold", {"reason": "an inquiry"}, index={})
    (job,) = [job for job in periodic_jobs(live_app.services) if job.name == "verify_ledger"]
    assert job.period == timedelta(days=1) and not job.at_start
    job.run()
    verification = api(live_app, token, entry_id)["verification"]
    assert verification["how"] == "cached"  # the job's full verification reached the head: nothing left to check
    assert verification["last_full_verification"]["through_sequence"] == 2 != first["through_sequence"]
