"""/metrics after real deliveries: verdicts and their latency per gate, GitHub and Jira requests and errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ALICE, LiveApp, completed_check
from test_deploy_gate_e2e import answers, approved, deploy, setup_release
from test_metrics import scrape, value

from gating import gunicorn_conf


def pr_for_pay_1(app: LiveApp, repo: str) -> str:
    app.jira.add_ticket("PAY-1", status="In Review")
    app.jira.transition("PAY-1", "Approved", by="acc-bob")
    app.github.add_commit(repo, "feature/x", "PAY-1 refunds", author=ALICE)
    number = app.github.open_pull_request(repo, head="feature/x", title="PAY-1: refunds", author="alice")
    return str(app.github.pull_request(repo, number)["head"]["sha"])


def grew(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_merge_check_moves_the_verdict_github_and_jira_counters(live_app: LiveApp, repo: str) -> None:
    before = scrape(live_app)
    sha = pr_for_pay_1(live_app, repo)
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"
    live_app.settle()
    after = scrape(live_app)
    assert grew(before, after, "countersign_gate_verdicts_total", gate="merge", outcome="passed") == 1
    assert grew(before, after, "countersign_gate_verdict_seconds_count", gate="merge") == 1
    assert grew(before, after, "countersign_gate_verdict_seconds_sum", gate="merge") > 0
    posts = grew(before, after, "countersign_github_requests_total", method="POST", route="check_runs", status="2xx")
    patches = grew(before, after, "countersign_github_requests_total", method="PATCH", route="check_runs", status="2xx")
    assert (posts, patches) == (1, 1)
    assert grew(before, after, "countersign_github_requests_total", method="GET", route="pulls", status="2xx") >= 1
    jira = sum(grew(before, after, "countersign_jira_requests_total", kind=kind) for kind in ("search", "serverInfo"))
    assert jira >= 1


def test_failures_are_counted_by_kind(live_app: LiveApp, repo: str) -> None:
    before = scrape(live_app)
    live_app.github.secondary_rate_limit("/check-runs", retry_after=1, method="POST")
    live_app.github.faults.answer("/compare/", 502, method="GET")
    live_app.jira.faults.fail_next.append(503)
    sha = pr_for_pay_1(live_app, repo)
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"
    live_app.settle()
    after = scrape(live_app)
    assert grew(before, after, "countersign_github_errors_total", kind="secondary_rate_limit") == 1
    assert grew(before, after, "countersign_github_errors_total", kind="server_error") >= 1
    assert grew(before, after, "countersign_rate_limit_waits_total", limit="secondary", how="in_place") >= 1
    assert grew(before, after, "countersign_rate_limit_wait_seconds_total", limit="secondary", how="in_place") >= 1
    errors = sum(
        grew(before, after, "countersign_jira_errors_total", kind=kind) for kind in ("unavailable", "connection")
    )
    assert errors == 1


def test_a_deployment_decision_counts_as_a_deploy_verdict(live_app: LiveApp, repo: str) -> None:
    before = scrape(live_app)
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved"
    live_app.settle()
    after = scrape(live_app)
    assert grew(before, after, "countersign_gate_verdicts_total", gate="deploy", outcome="passed") == 1
    assert grew(before, after, "countersign_gate_verdict_seconds_count", gate="deploy") == 1
    answered = grew(
        before, after, "countersign_github_requests_total", method="POST", route="protection_rule", status="2xx"
    )
    assert answered >= 1


def test_gunicorn_marks_a_dead_worker_in_multiprocess_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livesum_4321.db").write_bytes(b"")
    (tmp_path / "counter_4321.db").write_bytes(b"")
    gunicorn_conf.child_exit(None, SimpleNamespace(pid=4321))
    # Its live gauges go; its counters stay in the sums.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4321.db"]
