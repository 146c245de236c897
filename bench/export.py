"""Export benchmark: an evidence bundle of N signed deployment decisions (`countersign export --out`); prints figures.

.venv/bin/python bench/export.py                  # 100,000 entries, temporary SQLite file
.venv/bin/python bench/export.py --count 20000 --database-url postgresql+psycopg://postgres@127.0.0.1/bench --reset
.venv/bin/python bench/export.py --count 2000 --verify-script   # also time the bundle's verify.sh (slow: bash)

The ledger is written directly (the same envelopes, hashes and signatures as appends, without one transaction per
entry) so that the figures are the export's. The export runs as its own process, so its peak memory is its own.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_db import empty_ledger_database, ledger_arguments
from sqlalchemy import insert

from gating.db import Database, _redact
from gating.ledger import chain
from gating.ledger.signing import KEY_CHANGE, key_change_payload
from gating.models import LedgerEntry

START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 5000


def decision(n: int) -> tuple[dict[str, object], dict[str, object]]:
    sha = f"{n:040x}"
    payload = {
        "repository": "acme/payments",
        "environment": "production",
        "deployment_id": n,
        "sha": sha,
        "ref": "refs/heads/main",
        "requester": "bob",
        "decision": {"state": "approved", "outcome": "passed", "reasons": []},
        "captured_at": START + timedelta(minutes=n),
        "commits": [
            {
                "sha": f"{n:032x}{i:08x}",
                "author": {"login": "alice", "name": "Alice"},
                "committer": {"login": "alice", "name": "Alice"},
                "message": f"PAY-{n} change {i}",
                "tickets": [f"PAY-{n}"],
            }
            for i in range(5)
        ],
        "tickets": [
            {
                "key": f"PAY-{n}",
                "status": "Approved",
                "approvers": ["carol"],
                "approved_at": "2025-12-31T12:00:00Z",
                "approved_before_request": True,
                "outcome": "passed",
                "url": f"https://jira.example.com/browse/PAY-{n}",
            }
        ],
        "checks": [{"name": "ci", "kind": "check_run", "status": "completed", "conclusion": "success"}],
    }
    index = {"repository": "acme/payments", "environment": "production", "deployment_id": n, "sha": sha}
    return payload, index | {"decision": "approved"}


def write_ledger(db: Database, key: Ed25519PrivateKey, count: int) -> None:
    """Entry 1 turns signing on; 2..count+1 are decisions, one a minute, each signed: what appends would write."""
    prev = chain.GENESIS
    rows: list[dict[str, object]] = []
    for sequence in range(1, count + 2):
        at = START + timedelta(minutes=sequence)
        if sequence == 1:
            kind, payload, index = KEY_CHANGE, key_change_payload(key, prev, None), {}
        else:
            kind = "deployment_decision"
            payload, index = decision(sequence - 1)
        envelope = {"v": 2, "kind": kind, "sequence": sequence, "recorded_at": at, "index": index, "payload": payload}
        body = chain.canonical_json(envelope)
        digest = chain.entry_hash(prev, body)
        rows.append(
            {
                "sequence": sequence, "prev_hash": prev, "hash": digest, "payload": body, "kind": kind,
                "signature": chain.sign_hash(key, digest), "created_at": at,
                **{f: index.get(f) for f in ("repository", "environment", "deployment_id", "sha", "decision")},
            }
        )  # fmt: skip
        prev = digest
        if len(rows) == BATCH:
            with db.engine.begin() as connection:
                connection.execute(insert(LedgerEntry), rows)
            rows = []
    if rows:
        with db.engine.begin() as connection:
            connection.execute(insert(LedgerEntry), rows)


def size_of(folder: Path) -> tuple[int, int]:
    files, total = 0, 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(root, name))
    return files, total


def main() -> None:
    parser = ledger_arguments(__doc__, "deployment decisions (default 100,000)")
    parser.add_argument("--verify-script", action="store_true", help="also run the bundle's verify.sh")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="countersign-bench-export-")
    url, db = empty_ledger_database(args.database_url, reset=args.reset, tmp=tmp)
    key = Ed25519PrivateKey.generate()
    key_path = Path(tmp.name) / "ledger.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    print(f"database: {_redact(url)} ({db.engine.dialect.name}), {args.count:,} signed deployment decisions")
    t = time.perf_counter()
    write_ledger(db, key, args.count)
    print(f"ledger written in {time.perf_counter() - t:.1f} s")
    db.dispose()

    out = Path(tmp.name) / "bundle"
    env = os.environ | {"DATABASE_URL": url, "COUNTERSIGN_SIGNING_KEY_PATH": str(key_path)}
    command = [
        sys.executable, "-c", "from gating.cli import main; main()", "export",
        "--since", "2026-01-01", "--until", "2100-01-01", "--out", str(out),
    ]  # fmt: skip
    t = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"export failed ({done.returncode}): {done.stdout}{done.stderr}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
    files, total = size_of(out)
    print(done.stdout.splitlines()[0])
    print(
        f"export: {args.count:,} dossiers in {elapsed:.1f} s ({args.count / elapsed:,.0f}/s), "
        f"peak memory (max RSS of the export process) {peak_mb:,.0f} MB"
    )
    print(f"bundle: {files:,} files, {total / 2**20:,.0f} MB")
    if args.verify_script:
        t = time.perf_counter()
        checked = subprocess.run(["bash", str(out / "verify.sh")], capture_output=True, text=True, check=False)
        print(f"verify.sh: {checked.stdout.splitlines()[-1]} in {time.perf_counter() - t:.1f} s")
    tmp.cleanup()


if __name__ == "__main__":
    main()
