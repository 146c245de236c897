"""Simulator benchmark: the GitHub simulator's time per page of a long compare and a long history, and the contract
check's time per request; prints figures.

The suite checks what these answers contain (tests/test_github_simulator_deployments.py,
tests/test_contract_validator.py); how fast they come is measured here, where a busy machine prints a slower figure
instead of failing a test. Page times are the simulator's own (Flask's test client, no HTTP stack), then over HTTP
on 127.0.0.1 for comparison. Targets (what the suite once asserted): a page under 50 ms, 2,000 contract checks
under 5 s.

    .venv/bin/python bench/simulators.py [--compare 2000] [--history 5000] [--rounds 5] [--validations 2000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from github import Auth, GithubIntegration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulators.github import GitHubSimulator, Person, generate_app_key
from simulators.http import RecordedRequest
from tests.contract import GITHUB_SPEC_PATH, load_github_spec, validate_request

REPO = "acme/payments"
ALICE = Person(name="Alice", email="alice@example.com", login="alice")
PAGE = 100


def simulator_with_history(count: int) -> tuple[GitHubSimulator, str, list[str]]:
    """A simulator on 127.0.0.1 whose repository has `count` commits on main after a base commit, an installation
    token for it, and the SHAs: the base first, then oldest to newest."""
    private_pem, public_pem = generate_app_key()
    sim = GitHubSimulator(app_id=1, app_public_key_pem=public_pem, webhook_secret="bench")
    url = sim.start()
    sim.add_repository(REPO)
    base = sim.add_commit(REPO, "main", "base", author=ALICE)
    shas = [base] + [sim.add_commit(REPO, "main", f"PAY-{i}: change", author=ALICE) for i in range(count)]
    token = GithubIntegration(auth=Auth.AppAuth(1, private_pem), base_url=url + "/").get_access_token(1).token
    return sim, token, shas


def timed(get: Callable[[str], Any], path: str) -> tuple[float, Any]:
    started = time.perf_counter()
    body = get(path)
    return time.perf_counter() - started, body


def getters(sim: GitHubSimulator, token: str) -> dict[str, Callable[[str], Any]]:
    headers = {"Authorization": f"token {token}"}
    client = sim.flask_app.test_client()
    session = requests.Session()

    def in_process(path: str) -> Any:
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        return response.get_json()

    def over_http(path: str) -> Any:
        response = session.get(f"{sim.url}{path}", headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    return {"simulator": in_process, "over HTTP": over_http}


def milliseconds(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   "
        f"max {ordered[-1] * 1000:6.1f} ms   ({len(ordered)} pages)"
    )


def bench_compare(count: int, rounds: int) -> None:
    sim, token, shas = simulator_with_history(count)
    try:
        pages = -(-count // PAGE)
        print(f"compare of {count} commits, {pages} pages of {PAGE} (target: every page < 50 ms)")
        for label, get in getters(sim, token).items():
            samples: list[float] = []
            for _ in range(rounds):
                listed: list[str] = []
                for page in range(1, pages + 1):
                    path = f"/repos/{REPO}/compare/{shas[0]}...main?per_page={PAGE}&page={page}"
                    elapsed, body = timed(get, path)
                    samples.append(elapsed)
                    listed.extend(c["sha"] for c in body["commits"])
                if listed != shas[1:]:
                    raise SystemExit(f"the compare pages ({label}) do not list the {count} commits oldest first")
            print(f"  {label:<12}{milliseconds(samples)}")
    finally:
        sim.stop()


def bench_history(count: int, rounds: int) -> None:
    sim, token, shas = simulator_with_history(count)
    try:
        newest_first = list(reversed(shas))
        deep = max(1, count // PAGE - 10)
        print(f"history of {count} commits, pages 1 and {deep} of {PAGE} (target: each page < 50 ms)")
        for label, get in getters(sim, token).items():
            for page in (1, deep):
                path = f"/repos/{REPO}/commits?sha=main&per_page={PAGE}&page={page}"
                samples = []
                for _ in range(rounds):
                    elapsed, body = timed(get, path)
                    samples.append(elapsed)
                    if [c["sha"] for c in body] != newest_first[(page - 1) * PAGE : page * PAGE]:
                        raise SystemExit(f"history page {page} ({label}) is not the right {PAGE} commits")
                print(f"  {label:<12}page {page:<4}{milliseconds(samples)}")
    finally:
        sim.stop()


def bench_contract(count: int) -> None:
    if not GITHUB_SPEC_PATH.exists():
        print("contract check: skipped, GitHub's REST description is absent (run npm ci)")
        return
    spec = load_github_spec()
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    sample = [
        RecordedRequest("GET", f"/repos/{REPO}/pulls/7/commits", {"per_page": ["100"]}, {}, None, 200),
        RecordedRequest("GET", f"/repos/{REPO}/compare/main...feature/x", {"page": ["3"]}, {}, None, 200),
        RecordedRequest("POST", f"/repos/{REPO}/check-runs", {}, {}, {"name": "Countersign", "head_sha": sha}, 200),
        RecordedRequest("GET", f"/repos/{REPO}/commits/{sha}/check-runs", {}, {}, None, 200),
    ]
    started = time.perf_counter()
    for request in sample:  # the first check of each operation compiles its validators
        validate_request(spec, request)
    compiled = time.perf_counter() - started
    started = time.perf_counter()
    problems = [p for i in range(count) for p in validate_request(spec, sample[i % len(sample)])]
    elapsed = time.perf_counter() - started
    if problems:
        raise SystemExit(f"the sample requests do not validate: {problems[:3]}")
    print(f"contract check of {count} requests against GitHub's REST description (target: 2,000 in < 5 s)")
    print(f"  {f'first check of {len(sample)} operations':<30}{compiled:.3f} s   (compiles their validators)")
    print(f"  {f'{count} checks after that':<30}{elapsed:.3f} s   ({elapsed / count * 1e6:.0f} µs a request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=int, default=2000, help="commits in the compared range")
    parser.add_argument("--history", type=int, default=5000, help="commits in the listed history")
    parser.add_argument("--rounds", type=int, default=5, help="times each page is fetched")
    parser.add_argument("--validations", type=int, default=2000, help="requests checked against the description")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    bench_compare(args.compare, args.rounds)
    bench_history(args.history, args.rounds)
    bench_contract(args.validations)


if __name__ == "__main__":
    main()
