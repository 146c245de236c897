"""JiraGateway against the Jira simulator over real HTTP, with the real `jira` library, Cloud and Data Center."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from jira_client.gateway import MAX_RETRY_AFTER
from jira_client.models import JiraUnavailable, JiraUser
from jira_client.parsing import (
    changelog_is_truncated,
    merge_histories,
    missing_keys_from_errors,
    parse_datetime,
    parse_jsm_approvals,
    parse_ticket,
)
from simulators.jira import REMOVED_SEARCH_MESSAGE, JiraSimulator
from tests.jira_fixtures import (
    T0,
    api_requests,
    fast_gateway,
    running_jira,
    search_requests,
    seed_approved_ticket,
    seed_people,
)

FIXTURES = Path(__file__).parent / "fixtures" / "jira"


@pytest.fixture(params=["Cloud", "Server"])
def sim(request: pytest.FixtureRequest) -> Iterator[JiraSimulator]:
    with running_jira(request.param) as simulator:
        seed_people(simulator)
        yield simulator


@pytest.fixture
def cloud() -> Iterator[JiraSimulator]:
    with running_jira("Cloud") as simulator:
        seed_people(simulator)
        yield simulator


# ----- batching, paging, unknown keys -----


def test_forty_tickets_come_from_at_most_two_searches(sim: JiraSimulator) -> None:
    keys = [f"PAY-{n}" for n in range(1, 41)]
    for key in keys:
        seed_approved_ticket(sim, key)
    gateway = fast_gateway(sim.url)

    lookup = gateway.fetch_tickets(keys)

    assert sorted(lookup.tickets) == sorted(keys)
    assert lookup.unknown == frozenset()
    searches = search_requests(sim)
    assert 1 <= len(searches) <= 2
    expected_path = "/rest/api/2/search/jql" if sim.is_cloud else "/rest/api/2/search"
    assert {r.path for r in searches} == {expected_path}
    assert all(r.status == 200 for r in searches)
    query = searches[0].query
    assert set(",".join(query["fields"]).split(",")) == {
        "summary",
        "status",
        "issuetype",
        "project",
        "created",
        "updated",
        "reporter",
    }
    assert query["expand"] == ["changelog"]
    ticket = lookup.tickets["PAY-7"]
    assert (ticket.status, ticket.status_id, ticket.issue_type) == ("Approved", "10003", "Story")
    assert ticket.url == f"{sim.url}/browse/PAY-7"
    assert [c.to_status for c in ticket.status_changes] == ["In Progress", "Approved"]
    approval = ticket.status_changes[-1]
    assert approval.at == T0 + timedelta(hours=1)
    assert approval.from_status_id == "3"
    assert approval.to_status_id == "10003"
    if sim.is_cloud:
        assert approval.author == JiraUser(account_id="acc-bob", email="bob@example.com", display_name="Bob Approver")
        assert ticket.status_changes[0].author is not None and ticket.status_changes[0].author.email is None
        assert api_requests(sim, "/rest/api/2/search") == []  # never the removed endpoint
    else:
        assert approval.author is not None
        assert (approval.author.name, approval.author.email) == ("bob", "bob@example.com")
        assert approval.author.key and approval.author.key.startswith("JIRAUSER")


def test_every_page_is_read_when_jira_answers_short_pages(sim: JiraSimulator) -> None:
    keys = [f"OPS-{n}" for n in range(1, 41)]
    for key in keys:
        sim.add_ticket(key)
    sim.search_page_limit = 15

    lookup = fast_gateway(sim.url).fetch_tickets(keys)

    assert sorted(lookup.tickets) == sorted(keys)
    searches = search_requests(sim)
    assert len(searches) == 3
    if sim.is_cloud:
        assert "nextPageToken" not in searches[0].query
        assert all("nextPageToken" in r.query for r in searches[1:])
    else:
        assert [r.query["startAt"] for r in searches] == [["0"], ["15"], ["30"]]


def test_batches_follow_batch_size(sim: JiraSimulator) -> None:
    keys = [f"PAY-{n}" for n in range(1, 8)]
    for key in keys:
        sim.add_ticket(key)

    lookup = fast_gateway(sim.url, batch_size=3).fetch_tickets(keys)

    assert len(lookup.tickets) == 7
    assert len(search_requests(sim)) == 3


def test_unknown_keys_are_reported_and_known_ones_returned(sim: JiraSimulator) -> None:
    seed_approved_ticket(sim, "PAY-1")
    seed_approved_ticket(sim, "PAY-2")

    lookup = fast_gateway(sim.url).fetch_tickets(["PAY-1", "PAY-999", "pay-2", "NOPE-1", "not a key", "PAY-1"])

    assert sorted(lookup.tickets) == ["PAY-1", "PAY-2"]
    assert lookup.unknown == frozenset({"PAY-999", "NOPE-1", "NOT A KEY"})
    searches = search_requests(sim)
    assert [r.status for r in searches] == [400, 200]
    assert "PAY-999" not in searches[1].query["jql"][0]


def test_only_unknown_keys_give_an_empty_answer(sim: JiraSimulator) -> None:
    lookup = fast_gateway(sim.url).fetch_tickets(["PAY-404"])

    assert lookup.tickets == {}
    assert lookup.unknown == frozenset({"PAY-404"})


def test_unknown_keys_are_not_cached(cloud: JiraSimulator) -> None:
    gateway = fast_gateway(cloud.url)
    assert gateway.fetch_tickets(["PAY-5"]).unknown == {"PAY-5"}
    cloud.add_ticket("PAY-5")

    assert list(gateway.fetch_tickets(["PAY-5"]).tickets) == ["PAY-5"]


# ----- changelog completeness -----


def _long_history(sim: JiraSimulator, key: str, transitions: int) -> None:
    sim.add_ticket(key, reporter="acc-alice")
    status = "To Do"
    for n in range(transitions):
        status = "In Progress" if status != "In Progress" else "To Do"
        at = T0 + timedelta(minutes=2 * n)
        sim.transition(key, status, by="acc-alice" if n % 2 else "acc-bob", at=at)
        sim.add_history(key, "labels", None, f"label-{n}", by="acc-alice", at=at + timedelta(minutes=1))


def test_long_changelog_is_complete(sim: JiraSimulator) -> None:
    _long_history(sim, "PAY-1", 150)  # 300 histories: 150 status changes + 150 label changes

    ticket = fast_gateway(sim.url).fetch_tickets(["PAY-1"]).tickets["PAY-1"]

    assert len(ticket.status_changes) == 150
    times = [c.at for c in ticket.status_changes]
    assert times == sorted(times)
    assert times[0] == T0
    assert len({c.history_id for c in ticket.status_changes}) == 150
    pages = api_requests(sim, "/issue/PAY-1/changelog")
    if sim.is_cloud:
        # The search shows only the latest 20 histories; the rest come from the changelog endpoint.
        assert [r.query["startAt"] for r in pages] == [["0"], ["100"], ["200"]]
        assert all(r.status == 200 for r in pages)
    else:
        assert pages == []  # Data Center has no such endpoint and returns the whole history
        assert len(search_requests(sim)) == 1


def test_simulator_truncates_cloud_search_changelog(cloud: JiraSimulator) -> None:
    _long_history(cloud, "PAY-1", 15)
    answer = requests.get(
        f"{cloud.url}/rest/api/2/search/jql",
        params={"jql": "key = PAY-1", "fields": "status", "expand": "changelog"},
        timeout=5,
    ).json()
    changelog = answer["issues"][0]["changelog"]
    assert (changelog["total"], len(changelog["histories"])) == (30, 20)
    assert changelog_is_truncated(answer["issues"][0])


# ----- cache -----


def test_cache_hit_makes_no_request_and_fresh_and_invalidate_do(cloud: JiraSimulator) -> None:
    seed_approved_ticket(cloud, "PAY-1")
    seed_approved_ticket(cloud, "PAY-2")
    gateway = fast_gateway(cloud.url)
    first = gateway.fetch_tickets(["PAY-1", "PAY-2"])
    cloud.recorder.clear()

    again = gateway.fetch_tickets(["PAY-1", "PAY-2"])
    assert again.tickets == first.tickets
    assert cloud.recorder.requests == []

    cloud.transition("PAY-1", "Done", by="acc-bob")
    fresh = gateway.fetch_tickets(["PAY-1"], fresh=True)
    assert fresh.tickets["PAY-1"].status == "Done"
    assert len(search_requests(cloud)) == 1
    cloud.recorder.clear()
    assert gateway.fetch_tickets(["PAY-1"]).tickets["PAY-1"].status == "Done"  # fresh refreshed the cache
    assert cloud.recorder.requests == []

    cloud.transition("PAY-2", "Done", by="acc-bob")
    assert gateway.fetch_tickets(["PAY-2"]).tickets["PAY-2"].status == "Approved"  # cached
    gateway.invalidate("PAY-2")
    assert gateway.fetch_tickets(["PAY-2"]).tickets["PAY-2"].status == "Done"
    assert len(search_requests(cloud)) == 1


def test_cache_expires(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url, cache_ttl=0.2)
    gateway.fetch_tickets(["PAY-1"])
    time.sleep(0.3)
    cloud.recorder.clear()
    gateway.fetch_tickets(["PAY-1"])
    assert len(search_requests(cloud)) == 1


def test_fresh_read_on_cloud_reconciles_the_eventually_consistent_search(cloud: JiraSimulator) -> None:
    seed_approved_ticket(cloud, "PAY-1")
    gateway = fast_gateway(cloud.url)
    assert gateway.fetch_tickets(["PAY-1"]).tickets["PAY-1"].status == "Approved"
    # The search index now lags a minute behind, so it shows none of this test's changes: a lag of a fraction of
    # a second would make what it shows depend on how fast the machine runs the next lines.
    cloud.search_lag = 60
    cloud.transition("PAY-1", "Done", by="acc-bob")
    cloud.recorder.clear()

    gateway.invalidate("PAY-1")
    stale = gateway.fetch_tickets(["PAY-1"]).tickets["PAY-1"]
    assert (stale.status, stale.status_changes) == ("To Do", ())  # stale, as Jira can be
    fresh = gateway.fetch_tickets(["PAY-1"], fresh=True).tickets["PAY-1"]

    assert fresh.status == "Done"
    assert fresh.status_changes[-1].to_status == "Done"
    reconciled = search_requests(cloud)[-1]
    assert reconciled.query["reconcileIssues"] == [fresh.raw["id"]]


def test_fresh_read_of_a_key_never_seen_searches_again_with_its_id(cloud: JiraSimulator) -> None:
    seed_approved_ticket(cloud, "PAY-1")
    cloud.search_lag = 60
    cloud.transition("PAY-1", "Done", by="acc-bob")

    ticket = fast_gateway(cloud.url).fetch_tickets(["PAY-1"], fresh=True).tickets["PAY-1"]

    assert ticket.status == "Done"
    searches = search_requests(cloud)
    assert len(searches) == 2
    assert "reconcileIssues" not in searches[0].query
    assert searches[1].query["reconcileIssues"] == [ticket.raw["id"]]


# ----- failures -----


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep this test's own thread asks for, recorded instead of slept: the waits between retries are
    the gateway's decision, so a test asserts them, never how long a run took. Other threads (the simulator's)
    sleep as usual."""
    asked: list[float] = []
    sleep, test_thread = time.sleep, threading.get_ident()

    def record(seconds: float) -> None:
        if threading.get_ident() == test_thread:
            asked.append(seconds)
        else:
            sleep(seconds)

    monkeypatch.setattr(time, "sleep", record)
    return asked


def test_429_with_retry_after_is_honoured_then_succeeds(sim: JiraSimulator, waits: list[float]) -> None:
    sim.add_ticket("PAY-1")
    gateway = fast_gateway(sim.url)
    assert gateway.deployment_type == sim.deployment_type
    gateway.fetch_tickets(["PAY-404"])  # connect and warm the field cache
    sim.recorder.clear()
    sim.faults.retry_after = 1
    sim.faults.fail_next.append(429)

    lookup = gateway.fetch_tickets(["PAY-1"])

    assert list(lookup.tickets) == ["PAY-1"]
    assert [r.status for r in search_requests(sim)] == [429, 200]
    assert waits == [1.0]  # Jira's Retry-After, not the gateway's own 0.01 s backoff


def test_a_retry_after_longer_than_the_cap_waits_only_the_cap(cloud: JiraSimulator, waits: list[float]) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url)
    gateway.fetch_tickets(["PAY-404"])
    cloud.recorder.clear()
    cloud.faults.retry_after = 3600
    cloud.faults.fail_next.append(429)

    assert list(gateway.fetch_tickets(["PAY-1"]).tickets) == ["PAY-1"]
    assert [r.status for r in search_requests(cloud)] == [429, 200]
    assert waits == [MAX_RETRY_AFTER]


def test_500_twice_then_success(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url)
    gateway.fetch_tickets(["PAY-404"])  # connect and warm the field cache
    cloud.recorder.clear()
    cloud.faults.fail_next.extend([500, 500])

    lookup = gateway.fetch_tickets(["PAY-1"])

    assert list(lookup.tickets) == ["PAY-1"]
    assert [r.status for r in search_requests(cloud)] == [500, 500, 200]


def test_500_until_retries_run_out_raises(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url, retries=2)
    gateway.fetch_tickets(["PAY-404"])
    cloud.faults.fail_next.extend([500, 500, 500])

    with pytest.raises(JiraUnavailable, match=r"after 3 attempts \(HTTP 500\)"):
        gateway.fetch_tickets(["PAY-1"])


def test_jira_down_raises_after_our_bounded_retries_and_recovers(sim: JiraSimulator, waits: list[float]) -> None:
    sim.add_ticket("PAY-1")
    gateway = fast_gateway(sim.url, retries=3)
    sim.faults.down = True

    with pytest.raises(JiraUnavailable, match="HTTP 503"):
        gateway.fetch_tickets(["PAY-1"])
    assert len(sim.recorder.requests) == 4  # one try and three retries of serverInfo, no more
    assert waits == [0.01, 0.02, 0.04]  # the gateway's backoff alone: the jira library's own retries are off

    sim.faults.down = False
    assert list(gateway.fetch_tickets(["PAY-1"]).tickets) == ["PAY-1"]


def test_unreachable_jira_at_boot_does_not_stop_construction(waits: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = fast_gateway(f"http://127.0.0.1:{port}", retries=2)  # nothing listens: no error yet

    with pytest.raises(JiraUnavailable, match=r"after 3 attempts \(connection failed\)") as caught:
        gateway.fetch_tickets(["PAY-1"])
    assert caught.value.kind == "connection"
    assert waits == [0.01, 0.02]  # not the jira library's 10·2ⁿ s reconnection waits


def test_hang_beyond_timeout_raises(cloud: JiraSimulator, waits: list[float]) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url, timeout=0.3, retries=1)
    gateway.fetch_tickets(["PAY-404"])
    cloud.faults.hang = 1.0  # each answer would come, after a second: only the timeout makes this fail

    with pytest.raises(JiraUnavailable, match=r"after 2 attempts \(no answer within 0\.3 s\)") as caught:
        gateway.fetch_tickets(["PAY-1"])
    assert caught.value.kind == "timeout"
    assert waits == [0.01]


def test_bad_credentials_raise_without_the_secret(sim: JiraSimulator) -> None:
    sim.bad_credentials = True
    gateway = fast_gateway(sim.url, token="very-secret-token")

    with pytest.raises(JiraUnavailable, match="Jira rejected the credentials") as caught:
        gateway.fetch_tickets(["PAY-1"])

    assert "very-secret-token" not in str(caught.value)
    assert "very-secret-token" not in repr(gateway)
    assert len(sim.recorder.requests) == 1  # not retried


# What a failure may tell the public (check runs, deployment comments) and what only the log may.
INTERNAL = "MARKER-7f3a: upstream jira-db.internal.example:5432 refused"


def test_jira_down_has_a_public_summary_without_its_url_or_answer(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    cloud.fault_messages[503] = [INTERNAL]
    cloud.faults.down = True

    with pytest.raises(JiraUnavailable) as caught:
        fast_gateway(cloud.url, retries=1).fetch_tickets(["PAY-1"])

    assert caught.value.summary == "Jira answered HTTP 503; re-run when it is back"
    assert (caught.value.kind, caught.value.status) == ("unavailable", 503)
    assert cloud.url in caught.value.detail and str(caught.value) == caught.value.detail


def test_the_gate_facts_get_the_summary_and_the_log_gets_the_detail(
    cloud: JiraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    from gating.gates.gather import gather_tickets
    from gating.policy.config import build_policy

    cloud.fault_messages[503] = [INTERNAL]
    cloud.faults.down = True

    with caplog.at_level("WARNING", logger="gating.gates.gather"):
        lookup, error = gather_tickets(fast_gateway(cloud.url, retries=0), ["PAY-1"], build_policy())

    assert (lookup.tickets, error) == ({}, "Jira answered HTTP 503; re-run when it is back")
    (record,) = [r for r in caplog.records if r.name == "gating.gates.gather"]
    assert record.getMessage() == "jira.unavailable"
    assert cloud.url in record.__dict__["error"]
    assert (record.__dict__["kind"], record.__dict__["status"]) == ("unavailable", 503)


def test_an_unexpected_answer_keeps_jiras_body_out_of_the_summary(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url)
    gateway.fetch_tickets(["PAY-404"])  # connect and warm the field cache
    cloud.fault_messages[400] = [INTERNAL]
    cloud.faults.fail_path("/search/jql", 400)

    with pytest.raises(JiraUnavailable) as caught:
        gateway.fetch_tickets(["PAY-1"])

    assert caught.value.summary == (
        "Jira answered HTTP 400 to a ticket read; re-run, and if it happens again "
        "an administrator will find the details in Countersign's log (jira.unavailable)"
    )
    assert INTERNAL in caught.value.detail
    assert INTERNAL not in caught.value.summary and cloud.url not in caught.value.summary


def test_timeouts_refused_credentials_and_no_connection_say_so_publicly(cloud: JiraSimulator) -> None:
    cloud.add_ticket("PAY-1")
    gateway = fast_gateway(cloud.url, timeout=0.3, retries=0)
    gateway.fetch_tickets(["PAY-404"])
    cloud.faults.hang = 1.0
    with pytest.raises(JiraUnavailable) as slow:
        gateway.fetch_tickets(["PAY-1"])
    cloud.faults.hang = 0.0
    cloud.bad_credentials = True
    with pytest.raises(JiraUnavailable) as refused:
        fast_gateway(cloud.url).fetch_tickets(["PAY-1"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JiraUnavailable) as nobody:
        fast_gateway(f"http://127.0.0.1:{port}", retries=0).fetch_tickets(["PAY-1"])

    assert slow.value.summary == "Jira did not answer in time; re-run when it is back"
    assert refused.value.summary == (
        "Jira refused Countersign's credentials (HTTP 401); an administrator must check JIRA_USER and JIRA_TOKEN, "
        "then re-run"
    )
    assert nobody.value.summary == "Jira could not be reached; re-run when it is back"
    assert str(port) in nobody.value.detail and str(port) not in nobody.value.summary


def test_cloud_old_search_answers_410(cloud: JiraSimulator) -> None:
    for path in ("/rest/api/2/search", "/rest/api/3/search"):
        answer = requests.get(f"{cloud.url}{path}", params={"jql": "key = PAY-1"}, timeout=5)
        assert answer.status_code == 410
        assert answer.json() == {"errorMessages": [REMOVED_SEARCH_MESSAGE], "errors": {}}


def test_data_center_has_no_enhanced_search_or_changelog_endpoint() -> None:
    with running_jira("Server") as sim:
        sim.add_ticket("PAY-1")
        assert requests.get(f"{sim.url}/rest/api/2/search/jql", timeout=5).status_code == 404
        assert requests.get(f"{sim.url}/rest/api/2/issue/PAY-1/changelog", timeout=5).status_code == 404


# ----- time zones -----


def test_data_center_times_in_the_servers_zone_are_read_as_utc() -> None:
    with running_jira("Server") as sim:
        sim.time_zone = timezone(timedelta(hours=2))  # a server in Europe: 2024-01-18T08:27:50.429+0200
        seed_people(sim)
        seed_approved_ticket(sim, "PAY-1")
        sim.add_ticket("ITSM-1", issue_type="Change")
        sim.set_jsm_approval("ITSM-1", [("acc-bob", "approved")], "approved", T0, created_at=T0 - timedelta(hours=3))

        lookup = fast_gateway(sim.url).fetch_tickets(["PAY-1", "ITSM-1"], include_jsm=True)

    approval = lookup.tickets["PAY-1"].status_changes[-1]
    assert approval.raw["created"] == "2024-01-18T09:27:50.429+0200"
    assert (approval.at, approval.at.tzinfo) == (T0 + timedelta(hours=1), UTC)
    assert f"{approval.at:%Y-%m-%d %H:%M}" == "2024-01-18 07:27"
    (decision,) = lookup.tickets["ITSM-1"].jsm_approvals or ()
    assert (decision.completed_at, decision.created_at) == (T0, T0 - timedelta(hours=3))
    assert decision.completed_at is not None and decision.completed_at.tzinfo is UTC
    assert decision.created_at is not None and decision.created_at.tzinfo is UTC


# ----- JSM approvals -----


def test_jsm_approvals_are_read_and_parsed(sim: JiraSimulator) -> None:
    sim.add_ticket("ITSM-1", issue_type="Change", reporter="acc-alice")
    sim.add_ticket("ITSM-2", issue_type="Change")
    done = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
    sim.set_jsm_approval("ITSM-1", [("acc-bob", "approved"), ("acc-alice", "pending")], "approved", done)
    gateway = fast_gateway(sim.url)

    lookup = gateway.fetch_tickets(["ITSM-1", "ITSM-2"], include_jsm=True)

    (approval,) = lookup.tickets["ITSM-1"].jsm_approvals or ()
    assert approval.final_decision == "approved"
    assert approval.completed_at == done
    assert [(user.display_name, decision) for user, decision in approval.approvers] == [
        ("Bob Approver", "approved"),
        ("Alice Author", "pending"),
    ]
    assert approval.approvers[0][0].account_id == "acc-bob"
    assert lookup.tickets["ITSM-2"].jsm_approvals == ()  # not a service request: 404, no approvals
    assert len(api_requests(sim, "/approval")) == 2

    sim.recorder.clear()
    assert gateway.fetch_tickets(["ITSM-1"]).tickets["ITSM-1"].jsm_approvals  # cache serves a plain read too
    assert sim.recorder.requests == []
    plain = fast_gateway(sim.url).fetch_tickets(["ITSM-1"]).tickets["ITSM-1"]
    assert plain.jsm_approvals is None


def test_a_later_jsm_decline_outlives_the_approval_before_it(sim: JiraSimulator) -> None:
    from gating.policy.config import build_policy
    from gating.policy.ticket_approval import evaluate_ticket_approval

    policy = build_policy({"jira": {"approval_source": "jsm"}})
    for key in ("ITSM-1", "ITSM-2"):
        sim.add_ticket(key, issue_type="Change")
        sim.transition(key, "Approved", by="acc-bob", at=T0)
    early, late = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    # ITSM-1: approved, then a second approval declined. ITSM-2: declined, then approved. Jira lists
    # them in the order they were created.
    sim.set_jsm_approval("ITSM-1", [("acc-bob", "approved")], "approved", early, name="Manager")
    sim.set_jsm_approval("ITSM-1", [("acc-alice", "declined")], "declined", late, name="CAB")
    sim.set_jsm_approval("ITSM-2", [("acc-alice", "declined")], "declined", early, name="Manager")
    sim.set_jsm_approval("ITSM-2", [("acc-bob", "approved")], "approved", late, name="CAB")

    lookup = fast_gateway(sim.url).fetch_tickets(["ITSM-1", "ITSM-2"], include_jsm=True)

    declined = evaluate_ticket_approval(lookup.tickets["ITSM-1"], policy)
    assert declined.approval is None
    assert declined.problem == (
        "ITSM-1's latest Jira Service Management approval 'CAB' was declined on 2024-01-18 08:27 UTC; "
        "it needs a new approval"
    )
    approved = evaluate_ticket_approval(lookup.tickets["ITSM-2"], policy).approval
    assert approved is not None
    assert ([a.display_name for a in approved.approvers], approved.approved_at) == (["Bob Approver"], late)
    assert approved.record["name"] == "CAB"


# ----- auth -----


def test_user_and_token_send_basic_auth() -> None:
    with running_jira("Cloud") as sim:
        sim.add_ticket("PAY-1")
        fast_gateway(sim.url, user="bot@example.com", token="tok-1").fetch_tickets(["PAY-1"])
        expected = "Basic " + base64.b64encode(b"bot@example.com:tok-1").decode()
        assert {r.headers.get("Authorization") for r in sim.recorder.requests} == {expected}


def test_token_alone_sends_a_bearer_token() -> None:
    with running_jira("Server") as sim:
        sim.add_ticket("PAY-1")
        fast_gateway(sim.url, user=None, token="pat-1").fetch_tickets(["PAY-1"])
        assert {r.headers.get("Authorization") for r in sim.recorder.requests} == {"Bearer pat-1"}


# ----- parsing (pure) against Jira's own examples -----


def test_parse_jsm_approvals_from_atlassians_example() -> None:
    page = json.loads((FIXTURES / "servicedeskapi-request-approval.json").read_text())

    approval, declined = parse_jsm_approvals([page])

    assert approval.approval_id == "1"
    assert approval.final_decision == "approved"
    assert approval.completed_at == datetime(2016, 9, 29, 7, 30, tzinfo=UTC)
    ((user, decision),) = approval.approvers
    assert decision == "approved"
    assert user.email == "fred@example.com"
    assert user.display_name == "Fred F. User"
    assert (declined.approval_id, declined.final_decision) == ("2", "declined")


def test_parse_ticket_merges_changelog_pages_without_duplicates() -> None:
    page = json.loads((FIXTURES / "issue-changelog-page.json").read_text())
    status_history = {
        "id": "10003",
        "created": "1970-01-18T06:27:52.429+0000",
        "items": [
            {"field": "status", "fieldtype": "jira", "from": "1", "fromString": "Open", "to": "3", "toString": "Done"}
        ],
    }
    issue = {
        "id": "10010",
        "key": "TT-1",
        "fields": {"summary": "s", "status": {"name": "Done", "id": "3"}, "issuetype": {"name": "Bug"}},
        "changelog": {"startAt": 0, "maxResults": 1, "total": 3, "histories": [status_history]},
    }

    ticket = parse_ticket(issue, base_url="https://x.example/", extra_histories=[*page["values"], status_history])

    assert ticket.url == "https://x.example/browse/TT-1"
    assert len(merge_histories(issue["changelog"]["histories"], page["values"])) == 3
    (change,) = ticket.status_changes  # label changes are not status changes
    assert (change.from_status, change.to_status_id, change.author) == ("Open", "3", None)


def test_parse_datetime_and_missing_key_messages() -> None:
    assert parse_datetime("2024-01-18T06:27:50.429+0000") == T0
    # Data Center writes times in its own zone: they become UTC, the zone every "UTC" label promises.
    seven = parse_datetime("2016-09-28T14:01:00+0700")
    assert (seven, seven.tzinfo) == (datetime(2016, 9, 28, 7, 1, tzinfo=UTC), UTC)
    assert parse_datetime("2024-01-18T08:27:50.429+0200").tzinfo is UTC
    assert parse_datetime("2024-01-18T06:27:50Z") == T0.replace(microsecond=0)
    assert missing_keys_from_errors(
        [
            "An issue with key 'PAY-999' does not exist for field 'key'.",
            "An issue with key 'x-1' does not exist for field 'key'.",
        ]
    ) == {"PAY-999", "X-1"}
    assert missing_keys_from_errors(["Field 'foo' does not exist or you do not have permission to view it."]) is None
