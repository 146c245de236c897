"""GET /metrics in Prometheus' text format, and /readyz naming the worker."""

from __future__ import annotations

import requests
from conftest import ALICE, LiveApp, completed_check
from prometheus_client.parser import text_string_to_metric_families


def scrape(app: LiveApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{app.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def test_metrics_count_deliveries_and_their_answers_and_show_the_queue(live_app: LiveApp, repo: str) -> None:
    before = scrape(live_app)
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.github.add_commit(repo, "feature/x", "PAY-1 refunds", author=ALICE)
    live_app.github.open_pull_request(repo, head="feature/x", title="PAY-1: refunds", author="alice")
    sha = live_app.github.pull_request(repo, 1)["head"]["sha"]
    completed_check(live_app.github, repo, sha)
    live_app.settle()
    after = scrape(live_app)
    for outcome in ("accepted", "completed"):
        labels = {"source": "github", "event": "pull_request", "outcome": outcome}
        assert (
            value(after, "countersign_deliveries_total", **labels)
            == value(before, "countersign_deliveries_total", **labels) + 1
        )
    assert value(after, "countersign_delivery_answer_seconds_count", queue="merge") >= 1
    assert value(after, "countersign_queue_depth", queue="merge") == 0
    assert value(after, "countersign_queue_depth", queue="deploy") == 0


def test_readiness_names_the_database_and_the_worker(live_app: LiveApp) -> None:
    assert requests.get(f"{live_app.url}/readyz", timeout=10).json() == {
        "status": "ok",
        "database": "ok",
        "worker": "ok",
    }
    live_app.services.processor.shutdown()  # its worker stopped: deliveries would wait unanswered
    response = requests.get(f"{live_app.url}/readyz", timeout=10)
    assert response.status_code == 503
    assert response.json()["worker"] == "stopped: deliveries would wait unanswered"
