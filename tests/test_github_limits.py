"""GitHub's limits respected by design: long waits defer the job (nothing written twice), requests in flight
capped per installation, content-creating requests paced.

Signed webhooks into the live app, the real PyGithub client out to the simulated GitHub, which records every
write attempt (refused ones too) and the most requests each installation had in flight at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import ALICE, IDENTITIES_CONFIG, LiveApp, completed_check, wait_for
from test_deploy_gate_e2e import answers, approved, deploy, ledger_entries, setup_release
from test_metrics import scrape, value

from gating.github_api.limits import WINDOW_SECONDS, GitHubLimits, InstallationLimiter, rate_limit_wait

COMPLETION = {"method": "PATCH", "when": lambda body: body.get("status") == "completed"}


def approved_pr(app: LiveApp, repo: str, branch: str = "feature/x") -> tuple[str, dict[str, Any]]:
    """PAY-1 approved by Bob, Alice's PR for it; the `opened` payload, to deliver by hand."""
    if "PAY-1" not in app.jira.store.tickets:
        app.jira.add_ticket("PAY-1", status="In Review")
        app.jira.transition("PAY-1", "Approved", by="acc-bob")
    app.github.webhook_url = None
    sha = app.github.add_commit(repo, branch, "PAY-1 work", author=ALICE)
    number = app.github.open_pull_request(repo, head=branch, title="PAY-1: refunds", author="alice")
    return sha, app.github.pull_request_payload(repo, number, "opened")


def delivered(app: LiveApp, event: str, payload: dict[str, Any]) -> str:
    response = app.deliver(event, payload)
    assert response.status_code == 202, response.text
    app.settle(timeout=30)
    return str(response.json()["delivery"])


def deferred(app: LiveApp, limit: str) -> float:
    return value(scrape(app), "countersign_rate_limit_waits_total", limit=limit, how="deferred")


@pytest.fixture
def short_waits(live_app: LiveApp) -> LiveApp:
    """Waits longer than half a second defer the job (the default is 5 s; the tests' limits last 2 s)."""
    live_app.services.github.limits.wait_in_place = 0.5
    return live_app


# ---------------------------------------------------------------- long waits defer the job


def test_a_secondary_rate_limit_on_check_run_creation_defers_the_job_and_ends_with_one_check_run(
    short_waits: LiveApp, repo: str
) -> None:
    app = short_waits
    sha, payload = approved_pr(app, repo)
    before = deferred(app, "secondary")
    app.github.secondary_rate_limit("/check-runs", status=403, retry_after=2, method="POST")
    delivery = delivered(app, "pull_request", payload)
    (run,) = app.github.check_runs(repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    # Refused once (GitHub applied nothing), created once when the job ran again, completed once.
    assert [a.rsplit(" ", 1)[1] for a in app.github.write_attempts("/check-runs")] == ["403", "201", "200"]
    assert app.services.deliveries.status(delivery) == "completed"
    assert deferred(app, "secondary") == before + 1


def test_a_rate_limit_on_the_completion_defers_and_the_job_adopts_its_run(short_waits: LiveApp, repo: str) -> None:
    app = short_waits
    sha, payload = approved_pr(app, repo)
    app.github.secondary_rate_limit("/check-runs/", status=429, retry_after=2, **COMPLETION)
    delivery = delivered(app, "pull_request", payload)
    (run,) = app.github.check_runs(repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    statuses = [a.split(" ")[0] + " " + a.rsplit(" ", 1)[1] for a in app.github.write_attempts("/check-runs")]
    assert statuses == ["POST 201", "PATCH 429", "PATCH 200"]
    assert app.services.deliveries.status(delivery) == "completed"


def test_a_deferred_re_run_adopts_the_run_it_created(short_waits: LiveApp, repo: str) -> None:
    app = short_waits
    sha, payload = approved_pr(app, repo)
    delivered(app, "pull_request", payload)
    first = completed_check(app.github, repo, sha)
    app.github.secondary_rate_limit("/check-runs/", status=403, retry_after=2, **COMPLETION)
    delivered(app, "check_run", app.github.check_run_payload(repo, first["id"]))
    runs = app.github.check_runs(repo, sha)
    # Re-run asks for one new run: created once, though its job ran twice.
    assert [(r["status"], r["conclusion"]) for r in runs] == [("completed", "success")] * 2
    assert [a.split(" ")[0] for a in app.github.write_attempts("/check-runs") if " 201" in a] == ["POST", "POST"]


def test_an_exhausted_primary_rate_limit_defers_until_the_reset_rather_than_failing(
    short_waits: LiveApp, repo: str
) -> None:
    app = short_waits
    sha, payload = approved_pr(app, repo)
    before = deferred(app, "primary")
    app.github.primary_rate_limit_exhausted("/compare/", reset_in=2, method="GET")
    delivery = delivered(app, "pull_request", payload)
    (run,) = app.github.check_runs(repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert [a.split(" ")[0] for a in app.github.write_attempts("/check-runs")] == ["POST", "PATCH"]
    assert app.services.deliveries.status(delivery) == "completed"
    assert deferred(app, "primary") == before + 1


def test_a_deferred_deployment_answer_is_sent_once_with_one_ledger_entry(short_waits: LiveApp, repo: str) -> None:
    app = short_waits
    approved(app, "PAY-1")
    sha = setup_release(app, repo, ["PAY-1 refunds"])
    app.github.secondary_rate_limit(
        "/deployment_protection_rule", retry_after=2, method="POST", when=lambda body: "state" in body
    )
    deploy(app, repo, sha)
    (answer,) = answers(app, repo)
    app.settle(timeout=30)
    assert answer["state"] == "approved"
    assert [a for a in app.github.deployment_answers(repo) if a["state"]] == [answer]
    sent = [a.rsplit(" ", 1)[1] for a in app.github.write_attempts("/deployment_protection_rule")]
    assert sent == ["403", "204"]
    assert len(ledger_entries(app)) == 1


# ---------------------------------------------------------------- requests in flight per installation


def test_requests_in_flight_per_installation_stay_under_the_cap(live_app: LiveApp, repo: str) -> None:
    live_app.services.github.limits = GitHubLimits(max_in_flight=3)
    for n in range(1, 41):
        approved(live_app, f"PAY-{n}")
    # A release of 40 commits: each commit's pull requests are looked up, sixteen lookups at a time.
    sha = setup_release(live_app, repo, [f"PAY-{n} change" for n in range(1, 41)])
    live_app.github.faults.latency = 0.05
    live_app.github.concurrency.reset()
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    installation = live_app.github.concurrency.most[1]
    assert 2 <= installation <= 3  # concurrent, and never more than the cap
    assert live_app.services.github.limits.limiter("installation:1").most_in_flight <= 3


# ---------------------------------------------------------------- content-creating requests paced


class FakeClock:
    """Time that moves only when the pacing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


class RecordingLimits(GitHubLimits):
    """The app's limits, noting the (fake) time each write was let go at."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes_at: list[float] = []

    def before(self, key: str, method: str, route: str = "other") -> None:
        super().before(key, method, route)
        if method in ("POST", "PATCH", "PUT", "DELETE") and key.startswith("installation:"):
            self.writes_at.append(self.clock())


def test_content_creating_requests_are_paced_per_installation(live_app: LiveApp, repo: str) -> None:
    clock = FakeClock()
    limits = RecordingLimits(writes_per_minute=2, wait_in_place=3600, clock=clock, sleep=clock.sleep)
    live_app.services.github.limits = limits
    for n in range(3):
        _sha, payload = approved_pr(live_app, repo, branch=f"feature/{n}")
        delivered(live_app, "pull_request", payload)
    writes = live_app.github.write_attempts("/check-runs")
    assert len(writes) == 6 and all(w.endswith((" 201", " 200")) for w in writes)  # each PR: create, complete
    assert len(limits.writes_at) == 6
    assert clock.slept  # the pacing waited, rather than sending
    for start in limits.writes_at:
        assert len([t for t in limits.writes_at if start <= t < start + WINDOW_SECONDS]) <= 2


def test_minting_tokens_for_many_installations_at_once_is_not_paced(live_app: LiveApp) -> None:
    clock = FakeClock()
    live_app.services.github.limits = GitHubLimits(
        writes_per_minute=2, wait_in_place=3600, clock=clock, sleep=clock.sleep
    )
    repos = []
    for installation in (21, 22, 23):  # three installations starting at once: three tokens under the app's key
        name = f"acme/fleet-{installation}"
        live_app.github.add_repository(name, installation_id=installation)
        live_app.github.put_file(name, ".github/countersign.yml", IDENTITIES_CONFIG)
        repos.append(name)
    for name in repos:
        _sha, payload = approved_pr(live_app, name)
        delivered(live_app, "pull_request", payload)
    assert live_app.github.tokens_minted() == 3
    assert clock.slept == []  # two writes per installation (create, complete), three tokens: nothing waited
    for name in repos:
        assert [w.split()[-1] for w in live_app.github.write_attempts("/check-runs") if name in w] == ["201", "200"]


def test_pacing_defers_a_write_whose_wait_is_long_and_gives_its_slot_back() -> None:
    clock = FakeClock()
    limits = GitHubLimits(writes_per_minute=2, wait_in_place=5, clock=clock, sleep=clock.sleep)
    limits.before("installation:1", "POST")
    limits.before("installation:1", "PATCH")
    limits.before("installation:1", "GET")  # reads are not paced
    with pytest.raises(Exception) as raised:
        limits.before("installation:1", "POST")
    assert type(raised.value).__name__ == "GitHubRateLimited"
    assert raised.value.seconds == pytest.approx(60.0)  # type: ignore[attr-defined]
    clock.now += 60
    limits.before("installation:1", "POST")  # the window has moved on; the deferred write took no slot
    limits.before("installation:1", "POST")
    assert clock.slept == []
    limits.before("installation:2", "POST")  # another installation has its own window


def test_a_sliding_window_lets_a_burst_go_and_holds_the_next_writes_a_window_apart() -> None:
    clock = FakeClock()
    limiter = InstallationLimiter(max_in_flight=10, writes_per_minute=3, clock=clock)
    starts = [limiter.reserve_write() for _ in range(7)]
    assert [s - clock.now for s in starts] == [0, 0, 0, 60, 60, 60, 120]


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (403, {"retry-after": "30"}, b"{}", (30.0, "secondary")),
        (429, {"retry-after": "7"}, b"{}", (7.0, "secondary")),
        (403, {}, b'{"message": "You have exceeded a secondary rate limit"}', (60.0, "secondary")),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1120"}, b"{}", (21.0, "primary")),
        (403, {"x-ratelimit-remaining": "12"}, b'{"message": "Resource not accessible by integration"}', None),
        (500, {"retry-after": "30"}, b"{}", None),
    ],
)
def test_what_github_asks_to_wait(status: int, headers: dict[str, str], body: bytes, expected: Any) -> None:
    wait, limit = rate_limit_wait(status, headers, body, now=1100.0)
    assert ((wait, limit) if wait is not None else None) == expected


def test_a_merge_check_waits_out_a_short_rate_limit_in_place(live_app: LiveApp, repo: str) -> None:
    sha, payload = approved_pr(live_app, repo)
    live_app.github.secondary_rate_limit("/check-runs", retry_after=1, method="POST")
    before = scrape(live_app)
    delivered(live_app, "pull_request", payload)
    wait_for(lambda: live_app.github.check_runs(repo, sha))
    after = scrape(live_app)
    in_place = {"limit": "secondary", "how": "in_place"}
    assert value(after, "countersign_rate_limit_waits_total", **in_place) > value(
        before, "countersign_rate_limit_waits_total", **in_place
    )
    deferrals = {"limit": "secondary", "how": "deferred"}
    assert value(after, "countersign_rate_limit_waits_total", **deferrals) == value(
        before, "countersign_rate_limit_waits_total", **deferrals
    )


# ---------------------------------------------------------------- the settings


def test_the_limits_are_read_from_the_environment_and_checked(tmp_path: Path) -> None:
    from test_logging import MINIMAL_ENV

    from gating.settings import Settings, SettingsError

    env = {**MINIMAL_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    defaults = Settings.from_env(env)
    assert (defaults.github_max_in_flight, defaults.github_writes_per_minute) == (10, 80)
    tuned = Settings.from_env(
        {**env, "COUNTERSIGN_GITHUB_MAX_IN_FLIGHT": "4", "COUNTERSIGN_GITHUB_WRITES_PER_MINUTE": "30"}
    )
    assert (tuned.github_max_in_flight, tuned.github_writes_per_minute) == (4, 30)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {**env, "COUNTERSIGN_GITHUB_MAX_IN_FLIGHT": "101", "COUNTERSIGN_GITHUB_WRITES_PER_MINUTE": "0"}
        )
    assert raised.value.problems == (
        "COUNTERSIGN_GITHUB_MAX_IN_FLIGHT=101 is more than 100",
        "COUNTERSIGN_GITHUB_WRITES_PER_MINUTE='0' is not a whole number of at least 1",
    )


def test_a_rate_limit_the_transport_let_through_is_deferred_not_slept() -> None:
    from gating.github_api.errors import GitHubError, retrying
    from gating.github_api.limits import GitHubRateLimited

    slept: list[float] = []

    def refused() -> None:
        raise GitHubError(403, "403: You have exceeded a secondary rate limit", rate_limited=True)

    with pytest.raises(GitHubRateLimited) as raised:
        retrying(refused, seconds=600, what="check run creation", sleep=slept.append)
    assert (raised.value.seconds, slept) == (60.0, [])
