"""Merge gate benchmark: a 300-commit PR with 40 tickets, 50 ms of latency on every GitHub and Jira request.

Prints the Jira and GitHub requests one evaluation makes, the time from webhook to completed check
run, and webhook acknowledgement latency while evaluations run. Targets (issue): at most 2 Jira
requests, at most 10 GitHub requests, under 1.5 s, acknowledgement p99 under 50 ms.

    .venv/bin/python bench/pr_gate.py [--commits 300] [--tickets 40] [--latency 0.05] [--acks 200]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import start_stack
from simulators.github import GitHubSimulator, Person

REPO = "acme/payments"
ALICE = Person(name="Alice", email="alice@example.com", login="alice")
CONFIG = "identities:\n  alice: acc-alice\n  carol: acc-carol\n"


def wait_completed(github: GitHubSimulator, sha: str, count: int = 1, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in github.check_runs(REPO, sha) if r["status"] == "completed"]
        if len(runs) >= count and all(r["status"] == "completed" for r in github.check_runs(REPO, sha)):
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"no completed check run on {sha[:7]} within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every simulated request")
    parser.add_argument("--acks", type=int, default=100, help="deliveries sent to measure acknowledgement time")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    stack = start_stack()
    stack.github.webhook_url = None  # this benchmark delivers by hand, to time each delivery
    github, jira, hook = stack.github, stack.jira, stack.hook

    jira.add_user("acc-alice", "Alice", email="alice@example.com")
    jira.add_user("acc-carol", "Carol", email="carol@example.com")
    for n in range(1, args.tickets + 1):
        jira.add_ticket(f"PAY-{n}", status="In Review")
        jira.transition(f"PAY-{n}", "Approved", by="acc-carol")
    github.add_repository(REPO)
    github.put_file(REPO, ".github/countersign.yml", CONFIG)

    # Warm-up: the first evaluation after boot also gets an installation token and builds the
    # Jira client (serverInfo, field list). Those are once per process, not per evaluation.
    github.add_commit(REPO, "warmup", "PAY-1 warm up", author=ALICE)
    warm = github.open_pull_request(REPO, head="warmup", title="PAY-1 warm-up", author="alice")
    github.deliver("pull_request", github.pull_request_payload(REPO, warm, "opened"), url=hook)
    wait_completed(github, github.pull_request(REPO, warm)["head"]["sha"])
    setup = len(github.recorder.requests) + len(jira.recorder.requests)

    sha = ""
    for i in range(args.commits):
        sha = github.add_commit(REPO, "feature/big", f"PAY-{i % args.tickets + 1}: step {i}", author=ALICE)
    number = github.open_pull_request(REPO, head="feature/big", title="A big change", author="alice")
    payload = github.pull_request_payload(REPO, number, "opened")

    github.faults.latency = jira.faults.latency = args.latency
    github.recorder.clear()
    jira.recorder.clear()
    started = time.perf_counter()
    github.deliver("pull_request", payload, url=hook)
    finished = wait_completed(github, sha)
    check = github.check_runs(REPO, sha)[-1]
    gh_requests = list(github.recorder.requests)
    jira_requests = list(jira.recorder.requests)

    # Acknowledgement latency while evaluations run in the background: each delivery is new, so
    # each is accepted and queues an evaluation (of the small PR, so that the queue drains).
    edited = github.pull_request_payload(REPO, warm, "edited")

    def ack(_: int) -> float:
        t0 = time.perf_counter()
        response = github.deliver("pull_request", edited, url=hook)
        elapsed = time.perf_counter() - t0
        assert response.status_code in (200, 202), response.status_code
        return elapsed

    github.recorder.clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        acks = sorted(pool.map(ack, range(args.acks)))
    # Let the queued evaluations finish (each ends with two check-run PATCHes) before shutting down.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        patches = sum(1 for r in github.recorder.requests if r.method == "PATCH")
        if patches >= 2 * args.acks:
            break
        time.sleep(0.2)
    p50 = statistics.median(acks) * 1000
    p99 = acks[min(len(acks) - 1, int(len(acks) * 0.99))] * 1000

    print(f"merge gate: {args.commits} commits, {args.tickets} tickets, {args.latency * 1000:.0f} ms per request")
    print(f"  check run conclusion          {check['conclusion']} ({check['output']['title']})")
    print(f"  Jira requests                 {len(jira_requests)}   (target <= 2)")
    for r in jira_requests:
        print(f"      {r.method} {r.path}")
    print(f"  GitHub requests               {len(gh_requests)}   (target <= 10)")
    for r in gh_requests:
        query = "&".join(f"{k}={v[0]}" for k, v in r.query.items())
        print(f"      {r.method} {r.path}{'?' + query if query else ''}")
    print(f"  webhook -> completed check    {finished - started:.3f} s   (target < 1.5 s)")
    print(
        f"  webhook ack while evaluating  p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(acks)} deliveries "
        "(target p99 < 50 ms)"
    )
    print(f"  once per process (not counted above): {setup} requests for the warm-up evaluation")

    stack.stop()


if __name__ == "__main__":
    main()
