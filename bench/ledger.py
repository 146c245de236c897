"""Ledger benchmark: append N entries to a fresh database (rotating the key halfway), verify the chain; prints figures.

.venv/bin/python bench/ledger.py                      # 100,000 entries, temporary SQLite file, signed
.venv/bin/python bench/ledger.py --count 10000 --database-url postgresql+psycopg://postgres@127.0.0.1/bench --reset
"""

from __future__ import annotations

import statistics
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_db import empty_ledger_database, ledger_arguments

from gating.db import _redact
from gating.ledger import Ledger
from gating.ledger.signing import describe_spans

SAMPLE = 500  # appends timed individually at the start and at the end


def decision(n: int) -> tuple[dict[str, object], dict[str, object]]:
    sha = f"{n:040x}"
    payload = {
        "repository": "acme/payments",
        "environment": "production",
        "deployment_id": n,
        "sha": sha,
        "ref": "refs/heads/main",
        "requester": "bob",
        "decision": "approved",
        "commits": [
            {"sha": f"{n:032x}{i:08x}", "author": "alice", "committer": "alice", "message": f"PAY-{n} change {i}"}
            for i in range(5)
        ],
        "tickets": [
            {"key": f"PAY-{n}", "status": "Approved", "approver": "carol", "approved_at": "2026-11-30T12:00:00Z"}
        ],
        "checks": [{"name": "ci", "conclusion": "success", "duration_seconds": n / 8}],
        "reasons": [],
    }
    index = {k: payload[k] for k in ("repository", "environment", "deployment_id", "sha", "decision")}
    return payload, index


def main() -> None:
    parser = ledger_arguments(__doc__, "entries to append (default 100,000)")
    parser.add_argument("--no-sign", action="store_true", help="append without an Ed25519 signature")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="countersign-bench-")
    url, db = empty_ledger_database(args.database_url, reset=args.reset, tmp=tmp)

    key = None if args.no_sign else Ed25519PrivateKey.generate()
    ledger = Ledger(db, key)
    rotate_at = args.count // 2 if key is not None else 0
    print(f"database: {_redact(url)} ({db.engine.dialect.name}), {args.count:,} entries, signed: {key is not None}")

    durations: list[float] = []
    started = time.perf_counter()
    step = max(args.count // 10, 1)
    for n in range(1, args.count + 1):
        if n == rotate_at:
            # Verification then walks two spans, each with its own key.
            new_key = Ed25519PrivateKey.generate()
            change = ledger.rotate_key(new_key)
            ledger = Ledger(db, new_key)
            print(f"  signing key rotated at entry {change.sequence}", flush=True)
        payload, index = decision(n)
        t = time.perf_counter()
        ledger.append("deployment_decision", payload, index=index)
        if n <= SAMPLE or n > args.count - SAMPLE:
            durations.append(time.perf_counter() - t)
        if n % step == 0:
            print(f"  {n:>9,} appended, {n / (time.perf_counter() - started):,.0f}/s", flush=True)
    elapsed = time.perf_counter() - started
    sample = min(SAMPLE, args.count // 2) or 1
    first, last = durations[:sample], durations[-sample:]

    print(f"append: {args.count:,} in {elapsed:.1f} s = {args.count / elapsed:,.0f} entries/s (one transaction each)")
    print(
        f"append latency, median of {sample}: first {statistics.median(first) * 1000:.2f} ms, "
        f"last {statistics.median(last) * 1000:.2f} ms (ledger of {args.count - sample:,}+ entries)"
    )
    t = time.perf_counter()
    result = ledger.verify()
    verify_time = time.perf_counter() - t
    print(
        f"verify: {result.count:,} entries in {verify_time:.2f} s "
        f"({result.count / max(verify_time, 1e-9):,.0f}/s, signatures checked: {result.signatures_checked}) "
        f"-> {'OK' if result.ok else 'BROKEN: ' + str(result.reason)}"
    )
    print(f"spans: {describe_spans(result.spans)}")
    t = time.perf_counter()
    ledger.head()
    print(f"head lookup: {(time.perf_counter() - t) * 1000:.2f} ms")
    db.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
