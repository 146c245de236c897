"""Deploy gate benchmark: a release of 2,000 commits and 300 tickets, 50 ms of latency per request.

Prints the GitHub and Jira requests one decision makes, the time from the protection-rule webhook to
GitHub's callback, then (unless --skip-ledger) the ledger's append and full-verify figures for
100,000 entries on SQLite and PostgreSQL (bench/ledger.py). Targets (issue): Jira requests at most
ceil(300 / page size) + 1, webhook to callback under 5 s, verify of 100,000 entries under 10 s,
append time independent of the ledger's size.

    .venv/bin/python bench/deploy_gate.py [--commits 2000] [--tickets 300] [--latency 0.05]
        [--skip-ledger] [--ledger-count 100000] [--postgres-url postgresql+psycopg://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import start_stack
from jira_client.gateway import RECONCILE_LIMIT
from simulators.github import GitHubSimulator, Person

REPO = "acme/payments"
ALICE = Person(name="Alice", email="alice@example.com", login="alice")
BOT = Person(name="renovate[bot]", email="bot@example.com", login="renovate[bot]")
POLICY = """\
identities:
  alice: acc-alice
  carol: acc-carol
  dave: acc-dave
environments:
  production:
    required_checks: [build]
"""


def wait_answer(github: GitHubSimulator, count: int, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([a for a in github.deployment_answers(REPO) if a["state"]]) >= count:
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"no answer to deployment request {count} within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every simulated request")
    parser.add_argument("--skip-ledger", action="store_true", help="skip the 100,000-entry ledger figures")
    parser.add_argument("--ledger-count", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    stack = start_stack()
    github, jira = stack.github, stack.jira

    for account in ("alice", "carol", "dave"):
        jira.add_user(f"acc-{account}", account.capitalize(), email=f"{account}@example.com")
    for n in range(1, args.tickets + 1):
        jira.add_ticket(f"PAY-{n}", status="In Review")
        jira.transition(f"PAY-{n}", "Approved", by="acc-carol")
    github.add_repository(REPO)
    github.put_file(REPO, ".github/countersign.yml", POLICY)
    github.add_environment(REPO, "production")
    github.add_environment(REPO, "staging")
    base = github.add_commit(REPO, "main", "PAY-1: release 1.0", author=BOT)
    earlier = github.create_deployment(
        REPO, ref="main", sha=base, environment="production", creator="carol", deliver=False
    )
    github.set_deployment_status(REPO, earlier, "success")

    # Warm-up on staging: the installation token and the Jira client (serverInfo, fields) are once per process.
    github.add_check_run(REPO, base, "build")
    github.create_deployment(REPO, ref="main", sha=base, environment="staging", creator="dave")
    wait_answer(github, 1)

    sha = base
    for i in range(args.commits):
        sha = github.add_commit(REPO, "main", f"PAY-{i % args.tickets + 1}: change {i}", author=ALICE)
    github.add_check_run(REPO, sha, "build")

    github.faults.latency = jira.faults.latency = args.latency
    github.recorder.clear()
    jira.recorder.clear()
    started = time.perf_counter()
    github.create_deployment(REPO, ref="main", sha=sha, environment="production", creator="dave")
    finished = wait_answer(github, 2)
    answer = [a for a in github.deployment_answers(REPO) if a["state"]][-1]
    gh_requests = [r for r in github.recorder.requests if r.method != "POST" or "deployment_protection_rule" in r.path]
    jira_requests = list(jira.recorder.requests)
    stack.stop()

    jira_target = math.ceil(args.tickets / RECONCILE_LIMIT) + 1
    print(f"deploy gate: {args.commits} commits, {args.tickets} tickets, {args.latency * 1000:.0f} ms per request")
    print(f"  answer                        {answer['state']}")
    print(
        print(
            f"  Jira requests                 {len(jira_requests)}   "
            f"(target <= ceil({args.tickets}/{RECONCILE_LIMIT})+1 = {jira_target})"
        )
    )
    for r in jira_requests:
        detail = ", ".join(f"{k}={len(v[0].split(','))}" for k, v in r.query.items() if k in ("reconcileIssues",))
        fields = r.query.get("fields", [""])
        print(f"      {r.method} {r.path}  fields={','.join(fields)[:40]} {detail}")
    print(f"  GitHub requests               {len(gh_requests)}")
    kinds: dict[str, int] = {}
    for r in gh_requests:
        kind = f"{r.method} {r.path.split('/')[4] if len(r.path.split('/')) > 4 else r.path}"
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, count in sorted(kinds.items()):
        print(f"      {count:4d} x {kind}")
    print(f"  webhook -> callback           {finished - started:.3f} s   (target < 5 s)")

    if args.skip_ledger:
        return
    ledger_bench = Path(__file__).with_name("ledger.py")
    print(f"\nledger: {args.ledger_count:,} entries on SQLite")
    subprocess.run([sys.executable, str(ledger_bench), "--count", str(args.ledger_count)], check=True)
    if args.postgres_url:
        print(f"\nledger: {args.ledger_count:,} entries on PostgreSQL")
        subprocess.run(
            [
                sys.executable,
                str(ledger_bench),
                "--count",
                str(args.ledger_count),
                "--database-url",
                args.postgres_url,
                "--reset",
            ],
            check=True,
        )
    else:
        print("\n(PostgreSQL ledger figures: pass --postgres-url or set BENCH_POSTGRES_URL)")


if __name__ == "__main__":
    main()
