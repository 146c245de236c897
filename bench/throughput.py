"""Throughput benchmark: many repositories' PR events replayed compressed, as deployed, with 50 ms per request.

The stream: `--repos` repositories (one installation each), each opening `--events-per-repo` pull requests
(the sample of their 500 PR events an hour that is replayed), spread evenly over `--seconds`. It runs
through 2 web processes (gunicorn, COUNTERSIGN_EMBEDDED_WORKER=false) and 2 `countersign worker` processes
on PostgreSQL, then the same stream through one web process with its in-process worker on SQLite.

Prints deliveries lost, webhook acknowledgement p50/p99, webhook -> completed check p50/p99, GitHub
requests per event, the most GitHub requests in flight at once per installation, content-creating requests
per minute, and installation tokens minted per installation (per hour of replay, tokens lasting an hour).

    .venv/bin/python bench/throughput.py --postgres postgresql+psycopg://postgres@127.0.0.1/countersign_bench \
        [--repos 100] [--events-per-repo 3] [--seconds 60] [--latency 0.05] [--skip-sqlite]

The PostgreSQL database given is emptied first (DROP SCHEMA public CASCADE).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from sqlalchemy import create_engine, text

from bench.stack import SECRET, free_port
from gating.db import Database
from gating.demo import app_environment, launch_app
from simulators.github import GitHubSimulator, Person, generate_app_key
from simulators.jira import JiraSimulator

ALICE = Person(name="Alice", email="alice@example.com", login="alice")
CONFIG = "identities:\n  alice: acc-alice\n  carol: acc-carol\n"
TICKETS = 20
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class Event:
    repo: str
    installation: int
    sha: str
    payload: dict[str, Any]
    sent_at: float = 0.0
    ack_seconds: float | None = None
    status: int | None = None


@dataclass
class Figures:
    label: str
    events: int
    lost: int
    acks: list[float]
    completions: list[float]
    github_requests: int
    most_in_flight: int
    writes_peak_minute: int
    writes_per_minute: float
    tokens: dict[int, int] = field(default_factory=dict)
    duration: float = 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def simulators(latency: float) -> tuple[GitHubSimulator, JiraSimulator, str]:
    private_pem, public_pem = generate_app_key()
    github = GitHubSimulator(app_id=1, app_public_key_pem=public_pem, webhook_secret=SECRET)
    jira = JiraSimulator(deployment_type="Cloud", webhook_secret=SECRET)
    github.start()
    jira.start()
    github.webhook_url = None  # delivered by the replay, timed
    jira.add_user("acc-alice", "Alice", email="alice@example.com")
    jira.add_user("acc-carol", "Carol", email="carol@example.com")
    for n in range(1, TICKETS + 1):
        jira.add_ticket(f"PAY-{n}", status="In Review")
        jira.transition(f"PAY-{n}", "Approved", by="acc-carol")
    github.faults.latency = jira.faults.latency = latency
    return github, jira, private_pem


def build_stream(github: GitHubSimulator, repos: int, per_repo: int) -> list[Event]:
    """Every repository's PRs, interleaved so that the repositories take turns (as a busy organisation's do)."""
    by_repo: list[list[Event]] = []
    for r in range(repos):
        name = f"acme/service-{r:03d}"
        github.add_repository(name, installation_id=r + 1)
        github.put_file(name, ".github/countersign.yml", CONFIG)
        events = []
        for n in range(per_repo):
            branch = f"feature/{n}"
            ticket = (r * per_repo + n) % TICKETS + 1
            sha = github.add_commit(name, branch, f"PAY-{ticket}: change {n}", author=ALICE)
            number = github.open_pull_request(name, head=branch, title=f"PAY-{ticket}: change {n}", author="alice")
            events.append(Event(name, r + 1, sha, github.pull_request_payload(name, number, "opened")))
        by_repo.append(events)
    return [events[n] for n in range(per_repo) for events in by_repo]


def replay(github: GitHubSimulator, hooks: list[str], stream: list[Event], seconds: float) -> None:
    """Send each event at its time (evenly spread), round-robin over the web processes."""
    gap = seconds / max(len(stream), 1)
    started = time.perf_counter()

    def send(index: int) -> None:
        event = stream[index]
        delay = started + index * gap - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event.sent_at = time.time()
        t0 = time.perf_counter()
        try:
            response = github.deliver("pull_request", event.payload, url=hooks[index % len(hooks)])
            event.status = response.status_code
        except Exception:  # a delivery that got no answer counts as lost unless it completes anyway
            event.status = None
        event.ack_seconds = time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(len(stream))))


def completed_at(github: GitHubSimulator, stream: list[Event]) -> dict[str, float]:
    """Head SHA -> when its check run was first completed (the simulator's clock of the PATCH)."""
    run_head: dict[str, str] = {}
    for event in stream:
        for run in github.check_runs(event.repo, event.sha):
            run_head[str(run["id"])] = event.sha
    found: dict[str, float] = {}
    for r in github.recorder.requests:
        if r.method != "PATCH" or "/check-runs/" not in r.path or not (200 <= r.status < 300):
            continue
        if not isinstance(r.body, dict) or r.body.get("status") != "completed":
            continue
        sha = run_head.get(r.path.rsplit("/", 1)[1])
        if sha is not None and sha not in found:
            found[sha] = r.at
    return found


def drain(github: GitHubSimulator, stream: list[Event], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        done = completed_at(github, stream)
        if len(done) >= len(stream) or time.monotonic() > deadline:
            return done
        time.sleep(1.0)


def figures(label: str, github: GitHubSimulator, stream: list[Event], done: dict[str, float]) -> Figures:
    requests_ = list(github.recorder.requests)
    acks = [e.ack_seconds for e in stream if e.ack_seconds is not None and e.status == 202]
    completions = [done[e.sha] - e.sent_at for e in stream if e.sha in done]
    lost = sum(1 for e in stream if e.sha not in done)
    writes_by_installation: dict[int, list[float]] = defaultdict(list)
    repo_installation = {e.repo.lower(): e.installation for e in stream}
    tokens: dict[int, int] = defaultdict(int)
    for r in requests_:
        if r.method == "POST" and r.path.endswith("/access_tokens"):
            tokens[int(r.path.split("/")[3])] += 1
            continue
        if r.method in WRITES and r.path.startswith("/repos/"):
            owner, name = r.path.split("/")[2:4]
            installation = repo_installation.get(f"{owner}/{name}".lower())
            if installation is not None:
                writes_by_installation[installation].append(r.at)
    peak = 0
    for times in writes_by_installation.values():
        times.sort()
        start = 0
        for end in range(len(times)):
            while times[end] - times[start] >= 60:
                start += 1
            peak = max(peak, end - start + 1)
    all_writes = sorted(t for times in writes_by_installation.values() for t in times)
    span = (all_writes[-1] - all_writes[0]) / 60 if len(all_writes) > 1 else 0.0
    numbered = {k: v for k, v in github.concurrency.most.items() if isinstance(k, int)}
    duration = (max(done.values()) - min(e.sent_at for e in stream)) if done else 0.0
    return Figures(
        label=label,
        events=len(stream),
        lost=lost,
        acks=acks,
        completions=completions,
        github_requests=len(requests_),
        most_in_flight=max(numbered.values(), default=0),
        writes_peak_minute=peak,
        writes_per_minute=len(all_writes) / span if span else float(len(all_writes)),
        tokens=dict(tokens),
        duration=duration,
    )


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until /readyz answers 200; a slow answer while gunicorn boots on a busy machine is waited out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app at {url} exited with status {server.returncode}: see its log")
        try:
            if requests.get(f"{url}/readyz", timeout=10).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the app at {url} did not become ready")


def empty_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def run_postgres(args: argparse.Namespace, logs: Path) -> Figures:
    github, jira, private_pem = simulators(args.latency)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        stream = build_stream(github, args.repos, args.events_per_repo)
        empty_postgres(args.postgres)
        Database(args.postgres).upgrade()
        env = app_environment(
            github, jira, private_pem, SECRET, SECRET, args.postgres, COUNTERSIGN_EMBEDDED_WORKER="false"
        )
        webs = []
        for n in range(2):
            port = free_port()
            web = launch_app(port, env, stderr=(logs / f"web-{n}.log").open("w"))
            processes.append(web)
            webs.append((f"http://127.0.0.1:{port}", web))
        # The workers first: a web process is ready only once some worker has been seen on the job queue.
        countersign = shutil.which("countersign", path=str(Path(sys.executable).parent)) or "countersign"
        for n in range(2):
            log = (logs / f"worker-{n}.log").open("w")
            processes.append(subprocess.Popen([countersign, "worker"], env=env, stderr=log))
        for url, web in webs:
            wait_ready(url, web)
        hooks = [f"{url}/webhooks/github" for url, _web in webs]
        github.recorder.clear()
        github.concurrency.reset()
        replay(github, hooks, stream, args.seconds)
        done = drain(github, stream, args.drain)
        return figures("2 web + 2 workers, PostgreSQL", github, stream, done)
    finally:
        stop(processes)
        github.stop()
        jira.stop()


def run_sqlite(args: argparse.Namespace, logs: Path) -> Figures:
    github, jira, private_pem = simulators(args.latency)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        stream = build_stream(github, args.repos, args.events_per_repo)
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='countersign-bench-')) / 'bench.sqlite3'}"
        Database(url).upgrade()
        env = app_environment(github, jira, private_pem, SECRET, SECRET, url)
        port = free_port()
        web = launch_app(port, env, stderr=(logs / "sqlite-web.log").open("w"))
        processes.append(web)
        wait_ready(f"http://127.0.0.1:{port}", web)
        github.recorder.clear()
        github.concurrency.reset()
        replay(github, [f"http://127.0.0.1:{port}/webhooks/github"], stream, args.seconds)
        done = drain(github, stream, args.drain)
        return figures("1 web, in-process worker, SQLite", github, stream, done)
    finally:
        stop(processes)
        github.stop()
        jira.stop()


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value == value else "n/a"


def report(args: argparse.Namespace, results: list[Figures]) -> None:
    events = args.repos * args.events_per_repo
    print(
        f"throughput: {args.repos} repositories x {args.events_per_repo} PR events in {args.seconds:g} s "
        f"({events / args.seconds:.1f} events/s; {args.latency * 1000:.0f} ms per GitHub and Jira request)"
    )
    print(
        f"  (the full hour of {args.repos} x 500 events is {args.repos * 500 / 3600:.1f} events/s; "
        f"this replay runs it at {events / args.seconds / (args.repos * 500 / 3600):.0%} of that rate)"
    )
    first = results[0]
    print(f"\n  {'':44}" + "".join(f"{r.label:>36}" for r in results))
    rows = [
        ("deliveries lost", [f"{r.lost} of {r.events}" for r in results]),
        ("webhook ack p50", [ms(statistics.median(r.acks)) if r.acks else "n/a" for r in results]),
        ("webhook ack p99", [ms(percentile(r.acks, 0.99)) for r in results]),
        (
            "webhook -> completed check p50",
            [ms(statistics.median(r.completions)) if r.completions else "n/a" for r in results],
        ),
        ("webhook -> completed check p99", [ms(percentile(r.completions, 0.99)) for r in results]),
        ("GitHub requests per event", [f"{r.github_requests / max(r.events, 1):.1f}" for r in results]),
        ("most GitHub requests in flight / installation", [str(r.most_in_flight) for r in results]),
        ("content-creating requests, peak / installation / 60 s", [str(r.writes_peak_minute) for r in results]),
        ("content-creating requests / minute, all", [f"{r.writes_per_minute:.0f}" for r in results]),
        (
            "tokens minted / installation (max, mean)",
            [
                f"{max(r.tokens.values(), default=0)}, {statistics.mean(r.tokens.values()) if r.tokens else 0:.2f}"
                for r in results
            ],
        ),
        ("replay until last check completed", [f"{r.duration:.1f} s" for r in results]),
    ]
    for name, values in rows:
        print(f"  {name:44}" + "".join(f"{v:>36}" for v in values))
    if first.tokens:
        print(
            "\n  Tokens are shared by every process through the database and cached for their hour, so the count "
            "per installation over a replay shorter than an hour is the count per hour: one, whatever the processes."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL"), help="emptied first")
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--events-per-repo", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="the span the events are spread over")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every simulated request")
    parser.add_argument("--drain", type=float, default=240.0, help="how long to wait for the last checks")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulators' access log would bury the figures
    if not args.postgres:
        raise SystemExit("give --postgres URL (or BENCH_DATABASE_URL): a PostgreSQL database this may empty")
    logs = Path(tempfile.mkdtemp(prefix="countersign-throughput-"))
    results = [run_postgres(args, logs)]
    if not args.skip_sqlite:
        results.append(run_sqlite(args, logs))
    report(args, results)
    print(f"\n  logs: {logs}")


if __name__ == "__main__":
    main()
