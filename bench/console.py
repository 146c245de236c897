"""Console benchmark: search and dossier latency over N deployment decisions; prints figures.

.venv/bin/python bench/console.py                                   # 100,000 decisions, temporary SQLite file
.venv/bin/python bench/console.py --million                         # 1,000,000
.venv/bin/python bench/console.py --postgresql postgresql+psycopg://postgres@127.0.0.1/bench --reset
.venv/bin/python bench/console.py --count 20000 --sqlite --postgresql URL   # both, one after the other
.venv/bin/python bench/console.py --million --sqlite-file /var/tmp/bench.sqlite3 --keep   # seed once, measure again

Seeding is a bulk insert, not N appends: each entry is a realistic decision (8 commits, 2 tickets with their Jira
approval records, CI checks: about 6 KB of canonical JSON) with its search index rows, as the deploy gate writes
them. The entries are hash-chained (each hash covers the entry's text and the previous hash) but not signed; the
search figures do not depend on the chain at all, the dossier figures only through its verification.

Every search is `GET /api/v1/deployments` through the Flask test client (routing, token check, query, JSON), with
a token that sees every repository and with one scoped to some (`create_token(..., repositories=...)`). The
dossier is `GET /deployments/<id>` as a user gets it: verification is cached by chain head, so the first view after
seeding finds nothing verified and leaves the walk to the worker (both timed once, on their own), later views
cross-check the cached head, and the first view after a few appends verifies only those.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger_db import empty_ledger_database
from sqlalchemy import insert, text

from gating.app import create_app
from gating.console.auth import create_token
from gating.console.index import index_entry, rows_for, statements
from gating.console.scope import Scope
from gating.db import Database, _redact
from gating.ledger import Ledger, chain
from gating.ledger.verification import verify_cached
from gating.models import LEDGER_DERIVED, LedgerEntry, LedgerVerification, SearchRepository
from gating.settings import Settings
from simulators.github import generate_app_key

START = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 2000
REPOS = [f"acme/service-{i:02d}" for i in range(20)]
ENVIRONMENTS = ("production", "staging", "development")
PEOPLE = [f"dev{i:02d}" for i in range(60)]
APPROVERS = [f"approver{i:02d}" for i in range(15)]
COMMITS = 8
_FIELD = re.compile(r"@@(\w+)@@")


def sha(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def decision_values(n: int) -> dict[str, str]:
    """What varies from one decision to the next (a deterministic spread over repositories, people, outcomes)."""
    repo = REPOS[n % len(REPOS)]
    state = "rejected" if n % 9 == 0 else "emergency" if n % 31 == 0 else "approved"
    values = {
        "repo": repo,
        "env": ENVIRONMENTS[n % 3],
        "sha": sha("deploy", n),
        "ref": f"refs/tags/v{n // 1000}.{n % 1000}.0",
        "requester": PEOPLE[(n * 7) % len(PEOPLE)],
        "state": "rejected" if state == "rejected" else "approved",
        "outcome": {"approved": "passed", "rejected": "failed", "emergency": "emergency"}[state],
        "decision": state,
        "at": chain.format_time(START + timedelta(minutes=n)),
        "t1": f"PAY-{n}",
        "t2": f"OPS-{n // 3}",
        "a1": APPROVERS[n % len(APPROVERS)],
        "a2": APPROVERS[(n + 5) % len(APPROVERS)],
    }
    for i in range(COMMITS):
        values[f"c{i}"] = values["sha"] if i == COMMITS - 1 else sha("commit", n, i)
        values[f"p{i}"] = PEOPLE[(n + i) % len(PEOPLE)]
    return values


def evidence_of(v: dict[str, str]) -> dict[str, Any]:
    """The evidence document, in the shape `gating.policy.evidence.build_evidence` writes; `@@name@@` values."""

    def person(p: str) -> dict[str, str]:
        return {"login": p, "name": f"{p} name", "email": f"{p}@example.com"}

    def ticket(key: str, approver: str) -> dict[str, Any]:
        return {
            "key": v[key],
            "url": f"https://jira.example.com/browse/{v[key]}",
            "summary": "Change the way refunds are rounded for partial captures",
            "issue_type": "Story",
            "status": "Approved",
            "approvers": [f"{v[approver]} name"],
            "approved_at": v["at"],
            "approved_before_request": True,
            "approval_source": "changelog",
            "approval_record": {
                "id": "10001",
                "created": v["at"],
                "author": {"accountId": f"acc-{v[approver]}", "displayName": f"{v[approver]} name"},
                "items": [{"field": "status", "fromString": "In Review", "toString": "Approved"}],
            },
            "outcome": "passed",
            "reasons": [],
        }

    return {
        "repository": v["repo"],
        "environment": v["env"],
        "deployment_id": 0,
        "workflow_run_id": 0,
        "workflow_run_attempt": 1,
        "sha": v["sha"],
        "ref": v["ref"],
        "requester": v["requester"],
        "requested_at": v["at"],
        "captured_at": v["at"],
        "range": {"base_sha": v["c0"], "head_sha": v["sha"], "method": "last_successful", "truncated": False},
        "commits": [
            {
                "sha": v[f"c{i}"],
                "author": person(v[f"p{i}"]),
                "committer": person(v[f"p{i}"]),
                "message": f"{v['t1']}: adjust rounding of partial captures, part {i}\n\nSee the ticket for details.",
                "parents": [v[f"c{i - 1}"]] if i else [],
                "tickets": [v["t1"]] if i % 2 else [v["t2"]],
            }
            for i in range(COMMITS)
        ],
        "pull_requests": [
            {
                "number": 1,
                "title": f"{v['t1']} rounding",
                "author": v["p0"],
                "head_ref": "feature/rounding",
                "labels": [],
                "commits": [v[f"c{i}"] for i in range(COMMITS)],
                "merge_commit_sha": v["sha"],
                "merged_by": v["p1"],
            }
        ],
        "tickets": [ticket("t1", "a1"), ticket("t2", "a2")],
        "unknown_tickets": [],
        "checks": [
            {
                "name": name,
                "kind": "check_run",
                "status": "completed",
                "conclusion": "success",
                "succeeded": True,
                "app": "github-actions",
                "raw": {"id": 1, "name": name, "head_sha": v["sha"], "conclusion": "success"},
            }
            for name in ("build", "test", "lint")
        ],
        "required_checks": [{"name": "build", "app": None}],
        "emergency_deadline": None,
        "findings": [],
        "decision": {"state": v["state"], "outcome": v["outcome"], "reasons": []},
    }


def template() -> tuple[str, dict[str, Any]]:
    """The canonical text of an entry with `@@name@@` where values go: rendered once, then filled per entry by
    substitution (object keys never change, so the filled text is exactly what canonical_json would write)."""
    names = decision_values(0)
    placeholders = {name: f"@@{name}@@" for name in names}
    envelope = {
        "v": 2,
        "kind": "deployment_decision",
        "sequence": "@@sequence@@",
        "recorded_at": "@@at@@",
        "index": {
            "repository": "@@repo@@",
            "environment": "@@env@@",
            "deployment_id": "@@sequence@@",
            "sha": "@@sha@@",
            "decision": "@@decision@@",
        },
        "payload": evidence_of(placeholders) | {"deployment_id": "@@sequence@@", "workflow_run_id": "@@sequence@@"},
    }
    body = chain.canonical_json(envelope).replace('"@@sequence@@"', "@@sequence@@")
    return body, envelope


def seed(db: Database, count: int) -> float:
    """`count` decisions and their index rows, BATCH per transaction; returns the seconds it took."""
    body, _ = template()
    prev = chain.GENESIS
    entries: list[dict[str, Any]] = []
    indexed = []
    started = time.perf_counter()
    for sequence in range(1, count + 1):
        v = decision_values(sequence) | {"sequence": str(sequence)}
        text_ = _FIELD.sub(lambda m, v=v: v[m.group(1)], body)
        digest = chain.entry_hash(prev, text_)
        at = START + timedelta(minutes=sequence)
        entries.append(
            {
                "id": sequence, "sequence": sequence, "prev_hash": prev, "hash": digest, "payload": text_,
                "signature": None, "kind": "deployment_decision", "created_at": at, "repository": v["repo"],
                "environment": v["env"], "deployment_id": sequence, "sha": v["sha"], "decision": v["decision"],
            }
        )  # fmt: skip
        evidence = evidence_of(v)
        indexed.append(
            rows_for(
                entry_id=sequence, sequence=sequence, recorded_at=at, repository=v["repo"], environment=v["env"],
                deployment_id=sequence, sha=v["sha"], decision=v["decision"], evidence=evidence,
            )
        )  # fmt: skip
        prev = digest
        if len(entries) == BATCH or sequence == count:
            with db.engine.begin() as connection:
                connection.execute(insert(LedgerEntry), entries)
                for table, rows in statements(indexed):
                    connection.execute(insert(table), rows)
            entries, indexed = [], []
            if sequence % 100_000 == 0:
                print(f"  {sequence:,} seeded ({time.perf_counter() - started:.0f} s)", flush=True)
    with db.engine.begin() as connection:
        connection.execute(insert(SearchRepository), [{"name": name} for name in REPOS])
        if db.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), :n)"), {"n": count})
        else:
            connection.execute(text("ANALYZE"))
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does to a table in steady state, done now: statistics, and the visibility map without which
        # PostgreSQL cannot count from the indexes alone (a fresh bulk load would make every total read the heap).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("ledger_entries", "search_repositories", *(t.__tablename__ for t in LEDGER_DERIVED)):
                connection.execute(text(f"VACUUM ANALYZE {table}"))
    return time.perf_counter() - started


def append_decisions(ledger: Ledger, start: int, n: int) -> int:
    """`n` decisions after the `start` seeded, appended as the deploy gate appends them (entry and index rows in one
    transaction)."""
    for i in range(n):
        v = decision_values(start + 1 + i)
        with ledger.db.session() as session:
            evidence = evidence_of(v)
            entry = ledger.append(
                "deployment_decision",
                evidence,
                index={
                    "repository": v["repo"], "environment": v["env"], "deployment_id": start + 1 + i,
                    "sha": v["sha"], "decision": v["decision"],
                },
                session=session,
            )  # fmt: skip
            index_entry(session, entry, evidence)
    return n


def counted(found: dict[str, Any]) -> str:
    """A search's total as the dashboard says it: "> N" when the search counted no further than N."""
    return f"{found['total']:,}" if found["total_exact"] else f"> {found['total']:,}"


def measure(call: Callable[[], Any], samples: int) -> tuple[float, float]:
    """(median, p95) in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def queries(count: int) -> list[tuple[str, dict[str, str]]]:
    """(label, parameters): each kind of search an auditor makes, on values that exist in the seeded ledger."""
    mid = count // 2
    v = decision_values(mid)
    day = (START + timedelta(minutes=mid)).date()
    return [
        ("newest 50, no filter", {}),
        ("repository", {"repo": REPOS[3]}),
        ("environment + decision", {"environment": "production", "decision": "rejected"}),
        ("ticket", {"ticket": v["t1"]}),
        ("ticket, 3 decisions", {"ticket": v["t2"]}),
        ("commit inside a release, 7 chars", {"sha": v["c2"][:7]}),
        ("commit, full SHA", {"sha": v["c5"]}),
        ("approver", {"approver": f"acc-{v['a1']}"}),
        ("requester + one day", {"requester": v["requester"], "since": str(day), "until": str(day)}),
        ("version", {"version": v["ref"].removeprefix("refs/tags/")}),
        ("author", {"author": v["p3"]}),
        ("author + environment", {"author": v["p3"], "environment": "staging"}),
        ("date range, a week", {"since": str(day), "until": str(day + timedelta(days=6))}),
        ("page 200 of newest", {"page": "200"}),
    ]


def seeded_before(url: str | None, count: int) -> bool:
    """True when `url` holds this benchmark's `count` decisions already (and perhaps the few a run appends after)."""
    if url is None:
        return False
    db = Database(url)
    try:
        db.upgrade()
        with db.engine.begin() as connection:
            entry = connection.execute(
                text("SELECT hash FROM ledger_entries WHERE sequence = :n"), {"n": count}
            ).scalar_one_or_none()
            after = connection.execute(
                text("SELECT COUNT(*) FROM ledger_entries WHERE sequence > :n"), {"n": count}
            ).scalar_one()
            if entry is None or after > 1000:
                return False
            # Measured as after a fresh seeding: no cached verification yet.
            connection.execute(LedgerVerification.__table__.delete())
        return True
    finally:
        db.dispose()


def run(url: str | None, count: int, reset: bool, samples: int, dossier_samples: int, keep: bool = False) -> None:
    tmp = tempfile.TemporaryDirectory(prefix="countersign-bench-console-")
    if keep and seeded_before(url, count):
        assert url is not None
        print(f"\ndatabase: {_redact(url)}, {count:,} deployment decisions seeded before (--keep)")
    else:
        url, db = empty_ledger_database(url, reset=reset, tmp=tmp)
        if reset:
            with db.engine.begin() as connection:
                # The cached verification too: it describes the chain being replaced.
                for table in (*LEDGER_DERIVED, SearchRepository, LedgerVerification):
                    connection.execute(table.__table__.delete())
        print(f"\ndatabase: {_redact(url)} ({db.engine.dialect.name}), {count:,} deployment decisions")
        seconds = seed(db, count)
        print(f"seeded in {seconds:.1f} s ({count / seconds:,.0f} decisions/s, with their index rows)")
        db.dispose()

    private_pem, _public = generate_app_key()
    settings = Settings(
        github_app_id="1", github_private_key=private_pem, github_webhook_secret="bench",
        github_api_url="http://127.0.0.1:9", jira_url="http://127.0.0.1:9", jira_user=None, jira_token=None,
        jira_webhook_secret=None, database_url=url, embedded_worker=False, log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings)
    services = app.extensions["countersign"]
    token = create_token(
        services.db, f"bench-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    )  # a reused database keeps its tokens
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    print(f"\nsearch, GET /api/v1/deployments ({samples} requests each; ms)")
    print(f"  {'query':36} {'median':>8} {'p95':>8} {'total':>9}")
    worst = 0.0
    for label, params in queries(count):
        response = client.get("/api/v1/deployments", query_string=params, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        total = counted(response.get_json())
        median, p95 = measure(
            lambda p=params: client.get("/api/v1/deployments", query_string=p, headers=headers), samples
        )
        worst = max(worst, p95)
        print(f"  {label:36} {median:8.1f} {p95:8.1f} {total:>9}")
    print(f"  worst p95 {worst:.1f} ms (target < 100 ms): {'met' if worst < 100 else 'NOT met'}")

    # A viewer scoped as a token can be: the same route, its scope read from the token (never another repository).
    patterns = "acme/service-0*,acme/service-15"
    scoped = create_token(services.db, f"bench-scoped-{uuid.uuid4().hex[:8]}", datetime.now(UTC), repositories=patterns)
    scoped_headers = {"Authorization": f"Bearer {scoped}"}
    allowed = Scope.of(patterns)
    v = decision_values(count // 2 + 3)
    print(f"\nsearch by a viewer scoped to {allowed.describe()} (GET /api/v1/deployments, scoped token; ms)")
    for label, params in (
        ("newest 50", {}),
        ("ticket", {"ticket": v["t1"]}),
        ("approver", {"approver": v["a1"] + " name"}),
        ("author", {"author": v["p3"]}),
        ("author + environment", {"author": v["p3"], "environment": "production"}),
    ):
        response = client.get("/api/v1/deployments", query_string=params, headers=scoped_headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        found = response.get_json()
        assert all(allowed.allows(d["repository"]) for d in found["deployments"]), "a decision outside the scope"
        median, p95 = measure(
            lambda p=params: client.get("/api/v1/deployments", query_string=p, headers=scoped_headers), samples
        )
        worst = max(worst, p95)
        print(f"  {label:36} {median:8.1f} {p95:8.1f} {counted(found):>9}")
    print(f"  worst p95 of every search {worst:.1f} ms (target < 100 ms): {'met' if worst < 100 else 'NOT met'}")

    # The page verifies the chain through the cache (gating.ledger.verification): the first view after seeding finds
    # no cached result and more entries than a view walks, so it answers at once and the worker verifies every entry;
    # later views only cross-check the cached head, or extend it by what was appended since. The first two are timed
    # once, on their own; the figure a user gets day to day is the later views'.
    def dossier(entry_id: int) -> None:
        response = client.get(f"/deployments/{entry_id}", headers=headers)
        assert response.status_code == 200, response.status_code

    print("\ndossier, GET /deployments/<id> (ms)")
    started = time.perf_counter()
    dossier(1 + count // 3)
    first = (time.perf_counter() - started) * 1000
    print(f"  {'first view (nothing verified yet)':36} {first:8.1f}   (once: the walk is left to the worker)")
    started = time.perf_counter()
    walked = verify_cached(services.ledger)  # what the worker's extend_verification job runs
    print(
        f"  {'the worker verifies in full':36} {(time.perf_counter() - started) * 1000:8.0f}   "
        f"(once: {walked.entries_checked:,} entries, {walked.how})"
    )
    it = iter([1 + (i * 7919) % count for i in range(dossier_samples + 1)])
    median, p95 = measure(lambda: dossier(next(it)), dossier_samples)
    worst = p95
    print(f"  {'later views (cached verification)':36} {median:8.1f} {p95:8.1f}   ({dossier_samples} requests)")
    ledger: Ledger = services.ledger
    appended = append_decisions(ledger, count, 10)
    it2 = iter([1 + (i * 104729) % count for i in range(dossier_samples + 2)])  # one view, a warm-up, the samples
    started = time.perf_counter()
    dossier(next(it2))
    extended = (time.perf_counter() - started) * 1000
    print(f"  {f'first view after {appended} appends':36} {extended:8.1f}   (once: verifies only the new entries)")
    median, p95 = measure(lambda: dossier(next(it2)), dossier_samples)
    worst = max(worst, p95)
    print(f"  {'later views':36} {median:8.1f} {p95:8.1f}   ({dossier_samples} requests)")
    print(f"  worst p95 of later views {worst:.1f} ms (target < 100 ms): {'met' if worst < 100 else 'NOT met'}")
    services.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="deployment decisions (default 100,000)")
    parser.add_argument("--million", action="store_true", help="1,000,000 decisions")
    parser.add_argument("--sqlite", action="store_true", help="run on a temporary SQLite file (the default)")
    parser.add_argument("--postgresql", metavar="URL", help="run on this PostgreSQL database (emptied with --reset)")
    parser.add_argument("--sqlite-file", metavar="PATH", help="run on this SQLite file instead of a temporary one")
    parser.add_argument("--reset", action="store_true", help="delete existing ledger entries first")
    parser.add_argument(
        "--keep", action="store_true", help="measure a database seeded by an earlier run as it is (seed only if not)"
    )
    parser.add_argument("--samples", type=int, default=100, help="requests per search kind (default 100)")
    parser.add_argument("--dossier-samples", type=int, default=100, help="dossier requests (default 100)")
    args = parser.parse_args()
    count = 1_000_000 if args.million else args.count
    targets: list[str | None] = []
    if args.sqlite_file:
        targets.append(f"sqlite:///{Path(args.sqlite_file).resolve()}")
    elif args.sqlite or not args.postgresql:
        targets.append(None)
    if args.postgresql:
        targets.append(args.postgresql)
    for url in targets:
        run(url, count, args.reset, args.samples, args.dossier_samples, keep=args.keep)


if __name__ == "__main__":
    main()
