"""Searching the ledger on GET /api/v1/deployments and GET /: by a commit anywhere inside a release, ticket, people,
version, dates; paging; refusals that name the parameter; the viewer's scope. On decisions the real deploy gate
wrote (signed protection-rule webhooks), so the index rows are the ones the gate writes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from conftest import ALICE, IDENTITIES_CONFIG, LiveApp
from test_deploy_gate_e2e import BOT, answers, approved, setup_release

import gating.console.api
import gating.console.pages
import gating.console.queries
from gating.console.auth import create_token
from gating.console.scope import Scope


@pytest.fixture
def token(live_app: LiveApp) -> str:
    return create_token(live_app.services.db, "auditor", datetime.now(UTC))


def get(app: LiveApp, path: str, token: str, **params: Any) -> requests.Response:
    return requests.get(app.url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def search(app: LiveApp, token: str, **params: Any) -> dict[str, Any]:
    response = get(app, "/api/v1/deployments", token, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(app: LiveApp, token: str, **params: Any) -> list[int]:
    return [d["id"] for d in search(app, token, **params)["deployments"]]


@dataclass(frozen=True)
class Releases:
    repo: str
    first: str  # a commit inside the first release, not the deployed one
    deployed: str  # the first release's deployed SHA
    later: str  # the third release's only commit
    production: int  # ledger entry ids, in the order decided
    staging: int
    rejected: int


def deploy(app: LiveApp, repo: str, sha: str, environment: str, creator: str, ref: str = "main") -> int:
    return app.github.create_deployment(repo, ref=ref, sha=sha, environment=environment, creator=creator)


def releases(app: LiveApp, repo: str) -> Releases:
    """Three decisions by the live gate: a two-commit release to production (tag v1.2.0, by dave), the same commits
    to staging (by erin), then a one-commit release to production that is rejected (PAY-2 is not approved)."""
    approved(app, "PAY-1")
    app.jira.add_ticket("PAY-2", "Payouts", status="In Progress")
    setup_release(app, repo, [], build=None, deployed_before=False)
    app.github.add_environment(repo, "staging")
    tip = app.github.add_commit(repo, "main", "Release 1.0 (exempt)", author=BOT, signed=True)
    for environment in ("production", "staging"):  # both last ran the tip: each release is the two commits after it
        earlier = app.github.create_deployment(
            repo, ref="main", sha=tip, environment=environment, creator="carol", deliver=False
        )
        app.github.set_deployment_status(repo, earlier, "success")
    first = app.github.add_commit(repo, "main", "PAY-1 refunds", author=ALICE)
    deployed = app.github.add_commit(repo, "main", "PAY-1 refunds, the rest", author=ALICE)
    app.github.add_check_run(repo, deployed, "build", conclusion="success")
    shipped = deploy(app, repo, deployed, "production", "dave", ref="refs/tags/v1.2.0")
    answers(app, repo, 1)
    deploy(app, repo, deployed, "staging", "erin")
    answers(app, repo, 2)
    app.github.set_deployment_status(repo, shipped, "success")  # the pipeline deployed it
    later = app.github.add_commit(repo, "main", "PAY-2 payouts", author=ALICE)
    app.github.add_check_run(repo, later, "build", conclusion="success")
    deploy(app, repo, later, "production", "dave")
    found = answers(app, repo, 3)
    assert [a["state"] for a in found] == ["approved", "approved", "rejected"], found
    entries = sorted(
        app.services.ledger.search(kind="deployment_decision", repo=repo, limit=10), key=lambda e: e.sequence
    )
    assert [e.environment for e in entries] == ["production", "staging", "production"]
    return Releases(repo, first, deployed, later, entries[0].id, entries[1].id, entries[2].id)


def test_a_commit_inside_a_release_finds_every_deployment_that_contained_it(
    live_app: LiveApp, repo: str, token: str
) -> None:
    r = releases(live_app, repo)
    # The first commit of the release was never the deployed SHA: only the index of every commit finds it.
    found = search(live_app, token, sha=r.first[:7])
    assert [d["id"] for d in found["deployments"]] == [r.staging, r.production]
    assert all(d["matched_commits"] == [r.first] for d in found["deployments"])
    assert found["total"] == 2
    assert ids(live_app, token, sha=r.first) == [r.staging, r.production]  # the full SHA
    assert ids(live_app, token, sha=r.first[:12].upper()) == [r.staging, r.production]
    assert ids(live_app, token, sha=r.later[:7]) == [r.rejected]
    assert ids(live_app, token, sha="0000000") == []  # no commit of these releases (1 in 2**28 each) starts so

    # The dashboard answers "when did this change ship?" the same way.
    html = requests.get(live_app.url + "/", params={"sha": r.first[:7]}, auth=("auditor", token), timeout=30).text
    assert f'href="/deployments/{r.staging}"' in html and f'href="/deployments/{r.production}"' in html
    assert f'href="/deployments/{r.rejected}"' not in html.split("Deployment decisions</h2>")[1]
    assert "contains <code>" + r.first[:7] + "</code>" in html


def test_each_filter_narrows_the_search(live_app: LiveApp, repo: str, token: str) -> None:
    r = releases(live_app, repo)
    assert ids(live_app, token) == [r.rejected, r.staging, r.production]
    assert ids(live_app, token, repo=repo) == [r.rejected, r.staging, r.production]
    assert ids(live_app, token, repo="acme/other") == []
    assert ids(live_app, token, environment="staging") == [r.staging]
    assert ids(live_app, token, environment="production") == [r.rejected, r.production]
    assert ids(live_app, token, decision="rejected") == [r.rejected]
    assert ids(live_app, token, ticket="pay-1") == [r.staging, r.production]  # a whole key, in any case
    assert ids(live_app, token, ticket="PAY-2") == [r.rejected]
    assert ids(live_app, token, ticket="PAY-11") == []
    assert ids(live_app, token, requester="ERIN") == [r.staging]
    assert ids(live_app, token, requester="dave") == [r.rejected, r.production]
    # Approvers by the name the dossier shows, and by their Jira accountId and e-mail.
    assert ids(live_app, token, approver="Carol Approver") == [r.staging, r.production]
    assert ids(live_app, token, approver="acc-carol") == [r.staging, r.production]
    assert ids(live_app, token, approver="carol@example.com") == [r.staging, r.production]
    assert ids(live_app, token, approver="dave") == []
    assert ids(live_app, token, author="alice") == [r.rejected, r.staging, r.production]
    assert ids(live_app, token, author="alice@example.com", ticket="PAY-2") == [r.rejected]
    assert ids(live_app, token, version="v1.2.0") == [r.production]
    assert ids(live_app, token, version="refs/tags/v1.2.0") == [r.production]
    assert ids(live_app, token, version="main") == [r.rejected, r.staging]
    today = datetime.now(UTC).date()
    assert len(ids(live_app, token, since=today.isoformat(), until=today.isoformat())) == 3
    assert ids(live_app, token, since=(today + timedelta(days=1)).isoformat()) == []
    assert ids(live_app, token, until=(today - timedelta(days=1)).isoformat()) == []
    assert ids(live_app, token, environment="production", ticket="PAY-1", approver="carol", requester="dave") == []
    assert ids(live_app, token, environment="production", ticket="PAY-1", requester="dave") == [r.production]
    listed = search(live_app, token, ticket="PAY-1")["deployments"][1]
    assert listed["ref"] == "refs/tags/v1.2.0" and listed["requester"] == "dave" and listed["tickets"] == ["PAY-1"]
    assert listed["commit_count"] == 2 and listed["sha"] == r.deployed and "matched_commits" not in listed


def test_paging_gives_the_total_and_links_to_the_next_and_previous_pages(
    live_app: LiveApp, repo: str, token: str
) -> None:
    r = releases(live_app, repo)
    first = search(live_app, token, per_page=2, repo=repo)
    assert [d["id"] for d in first["deployments"]] == [r.rejected, r.staging]
    assert (first["total"], first["page"], first["per_page"], first["pages"]) == (3, 1, 2, 2)
    assert first["total_exact"] is True and parse_qs(urlparse(first["links"]["last"]).query)["page"] == ["2"]
    assert first["links"]["prev"] is None
    following = first["links"]["next"]
    assert parse_qs(urlparse(following).query) == {"repo": [repo], "page": ["2"], "per_page": ["2"]}
    second = requests.get(live_app.url + following, headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert [d["id"] for d in second["deployments"]] == [r.production]
    assert second["total"] == 3 and second["links"]["next"] is None
    assert parse_qs(urlparse(second["links"]["prev"]).query)["page"] == ["1"]
    beyond = search(live_app, token, page=5, per_page=2)
    assert beyond["deployments"] == [] and beyond["total"] == 3
    assert ids(live_app, token, limit=1) == [r.rejected]  # the parameter's first name still works
    # Paged through one child index (an author is also each commit's committer: one decision, listed once).
    by_author = search(live_app, token, author="alice", per_page=2)
    assert [d["id"] for d in by_author["deployments"]] == [r.rejected, r.staging] and by_author["total"] == 3
    assert ids(live_app, token, author="alice", per_page=2, page=2) == [r.production]
    assert ids(live_app, token, ticket="PAY-1", per_page=1, page=2) == [r.production]

    page = requests.get(live_app.url + "/", params={"per_page": 1}, auth=("auditor", token), timeout=30).text
    assert "3 decisions, page 1 of 3" in page and 'rel="next" href="/?page=2&amp;per_page=1"' in page
    assert 'rel="prev"' not in page


def test_past_the_count_limit_the_total_says_more_than_and_paging_goes_on(
    live_app: LiveApp, repo: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = releases(live_app, repo)
    monkeypatch.setattr(gating.console.queries, "COUNT_LIMIT", 2)  # three decisions stand for a million
    first = search(live_app, token, per_page=1)
    assert (first["total"], first["total_exact"], first["links"]["last"]) == (2, False, None)
    assert [d["id"] for d in first["deployments"]] == [r.rejected] and first["links"]["next"] is not None
    third = search(live_app, token, per_page=1, page=3)  # past the counted matches, still found
    assert [d["id"] for d in third["deployments"]] == [r.production] and third["links"]["next"] is None
    assert (third["total"], third["total_exact"]) == (3, True)  # the last page: its total is known, uncounted
    beyond = search(live_app, token, per_page=1, page=4)
    assert (beyond["deployments"], beyond["total_exact"], beyond["links"]["next"]) == ([], False, None)
    assert search(live_app, token, per_page=2)["total_exact"] is False  # a page that is not the last: counted
    by_author = search(live_app, token, author="alice", per_page=1)  # counted in the child index
    assert (by_author["total"], by_author["total_exact"]) == (2, False)
    # A child filter matching more than are counted, with another filter besides: not counted at all, and the
    # total says "more than" what the pages so far hold.
    combined = search(live_app, token, author="alice", repo=repo, per_page=1)
    assert (combined["total"], combined["total_exact"]) == (1, False) and combined["links"]["next"] is not None
    assert ids(live_app, token, author="alice", repo=repo, per_page=1, page=2) == [r.staging]
    assert search(live_app, token, author="alice", repo=repo)["total"] == 3  # one page: exact
    narrow = search(live_app, token, environment="production")
    assert (narrow["total"], narrow["total_exact"]) == (2, True) and narrow["links"]["last"] is not None
    page = requests.get(live_app.url + "/", params={"per_page": 1}, auth=("auditor", token), timeout=30).text
    assert "more than 2 decisions (narrow the search for an exact count), page 1" in page
    assert 'rel="next" href="/?page=2&amp;per_page=1"' in page


@pytest.mark.parametrize(
    ("params", "name", "says"),
    [
        ({"sha": "abcdef"}, "sha", "at least 7"),
        ({"sha": "abcdefg"}, "sha", "not a hexadecimal"),
        ({"repo_name": "acme/web"}, "repo_name", "unknown parameter"),
        ({"since": "yesterday"}, "since", "ISO-8601"),
        ({"until": "2024-02-30"}, "until", "ISO-8601"),
        ({"since": "2024-05-02", "until": "2024-05-01"}, "until", "later than since"),
        ({"ticket": "PAY"}, "ticket", "Jira key"),
        ({"page": "0"}, "page", "1 or more"),
        ({"per_page": "501"}, "per_page", "between 1 and 500"),
    ],
)
def test_a_search_it_cannot_understand_is_400_naming_the_parameter_in_the_api_and_on_the_page(
    live_app: LiveApp, token: str, params: dict[str, str], name: str, says: str
) -> None:
    response = get(live_app, "/api/v1/deployments", token, environment="production", **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["parameter"] == name and body["error"].startswith(f"{name}: ") and says in body["error"]

    page = requests.get(
        live_app.url + "/", params={"environment": "production", **params}, auth=("auditor", token), timeout=30
    )
    assert page.status_code == 400
    assert 'role="alert">Search not understood: ' + name + ": " in page.text and says in page.text
    assert 'name="environment" value="production"' in page.text  # the form as it was sent


def test_a_parameter_given_twice_is_refused(live_app: LiveApp, token: str) -> None:
    response = requests.get(
        live_app.url + "/api/v1/deployments?repo=a/b&repo=c/d", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 400 and response.json()["parameter"] == "repo"


def test_a_scoped_viewer_never_finds_another_repositorys_decisions(
    live_app: LiveApp, repo: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = releases(live_app, repo)
    other = f"{repo}-other"
    live_app.github.add_repository(other)
    live_app.github.put_file(other, ".github/countersign.yml", IDENTITIES_CONFIG)
    sha = setup_release(live_app, other, ["PAY-1 elsewhere"])
    deploy(live_app, other, sha, "production", "dave")
    answers(live_app, other, 1)
    everything = ids(live_app, token, ticket="PAY-1")
    assert len(everything) == 3

    # Tokens see every repository for now; the routes ask `current_scope` what the viewer may see.
    scope = Scope.of(other)
    monkeypatch.setattr(gating.console.api, "current_scope", lambda: scope)
    monkeypatch.setattr(gating.console.pages, "current_scope", lambda: scope)
    for params in (
        {},
        {"ticket": "PAY-1"},
        {"sha": r.first[:7]},
        {"requester": "dave"},
        {"approver": "acc-carol"},
        {"author": "alice"},
        {"repo": repo},
        {"environment": "production"},
    ):
        found = search(live_app, token, **params)
        assert all(d["repository"] == other for d in found["deployments"]), params
        assert found["total"] == len(found["deployments"]) <= 1, params
    assert ids(live_app, token, sha=r.first) == []
    assert len(ids(live_app, token, ticket="PAY-1")) == 1
    html = requests.get(live_app.url + "/", params={"ticket": "PAY-1"}, auth=("auditor", token), timeout=30).text
    assert repo + "<" not in html.replace(other, "") and f'href="/deployments/{r.production}"' not in html


def test_the_dashboard_shows_the_timeline_the_ledger_and_the_filters(live_app: LiveApp, repo: str, token: str) -> None:
    r = releases(live_app, repo)
    page = requests.get(live_app.url + "/", auth=("auditor", token), timeout=30)
    assert page.status_code == 200
    html = page.text
    timeline = html.split("What reached each environment</h2>")[1].split("<h2>")[0]
    # Deployments let through, per environment, newest first; the rejected one is not in the timeline.
    assert "<h3>staging</h3>" in timeline and "<h3>production</h3>" in timeline
    assert f'href="/deployments/{r.production}"' in timeline and f'href="/deployments/{r.rejected}"' not in timeline
    assert "refs/tags/v1.2.0" in timeline
    assert "Entries recorded</dt><dd>3</dd>" in html and "<dt>Head</dt><dd>entry 3, <code>" in html
    # The daily full verification ran when the app started, before any decision.
    assert 'Last full verification</dt>\n  <dd><span class="ok">OK</span> through entry 0, ' in html
    assert requests.get(live_app.url + "/api/v1/ledger/verify", headers={"Authorization": f"Bearer {token}"}).ok
    again = requests.get(live_app.url + "/", auth=("auditor", token), timeout=30).text
    assert 'Last full verification</dt>\n  <dd><span class="ok">OK</span> through entry 3, ' in again
    assert re.search(r"through entry 3, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</dd>", again), "to the second, in UTC"
    for name in ("repo", "environment", "ticket", "sha", "version", "requester", "approver", "since", "until"):
        assert f'name="{name}"' in html
    assert "3 decisions, page 1 of 1" in html
    # Each table cell carries its label, for the narrow layout where a row becomes a card.
    assert 'data-label="Decision" class="rejected"' in html and "@media (max-width: 40rem)" in html
