"""`countersign export --out DIR`: the evidence bundle for a period, checked here the way a third party would —
with bash, sha256sum, xxd and openssl only — and shown to fail when one byte of it changes."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ledger_helpers import A, B, Clock, hex_of, key_file
from sqlalchemy import text

from gating.cli import main
from gating.console.dossiers import build_dossier
from gating.console.exports import write_bundle
from gating.console.queries import DeploymentQuery
from gating.db import Database
from gating.ledger import Ledger, verify_against_checkpoint
from gating.ledger.purges import Retention
from gating.ledger.retention import plan_purge, purge

LONE = "\ud83d"  # half an emoji, as GitHub may send it
TOOLS_ONLY = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}  # no virtualenv, no Countersign on the path


def evidence(n: int, repo: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sha = f"{n:040x}"
    message = f"PAY-{n}: refunds" if n != 4 else f"PAY-{n}: fix {LONE}"
    payload = {
        "repository": repo,
        "environment": "production",
        "deployment_id": 7000 + n,
        "sha": sha,
        "ref": "refs/heads/main",
        "requester": "dave",
        "decision": {"state": "approved", "outcome": "passed", "reasons": []},
        "captured_at": "2026-01-01T00:00:00Z",
        "commits": [
            {
                "sha": sha,
                "author": {"login": "alice", "name": "Alice Author"},
                "committer": {"login": "alice", "name": "Alice Author"},
                "message": message,
                "tickets": [f"PAY-{n}"],
            }
        ],
        "tickets": [
            {
                "key": f"PAY-{n}",
                "summary": "Refunds <b>fast</b>",
                "status": "Approved",
                "approvers": ["Carol Approver"],
                "approved_at": "2025-12-31T10:00:00Z",
                "approved_before_request": True,
                "outcome": "passed",
                "url": f"https://jira.example.com/browse/PAY-{n}",
            }
        ],
        "checks": [{"name": "build", "kind": "check_run", "status": "completed", "conclusion": "success"}],
    }
    index = {"repository": repo, "environment": "production", "deployment_id": 7000 + n, "sha": sha}
    return payload, index | {"decision": "approved"}


def fill(ledger: Ledger, numbers: range, repos: tuple[str, ...] = ("acme/payments", "acme/web")) -> None:
    for n in numbers:
        payload, index = evidence(n, repos[n % len(repos)])
        ledger.append("deployment_decision", payload, index=index)


@pytest.fixture
def signed(db: Database) -> Ledger:
    """1 turns signing on (A); 2-7 decisions; 8 hands over to B; 9-14 decisions signed by B. Two a day from 2026."""
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=12))
    ledger = Ledger(db, A, clock=clock)
    fill(ledger, range(1, 7))
    ledger.rotate_key(B)
    ledger = Ledger(db, B, clock=clock)
    fill(ledger, range(7, 13))
    return ledger


def export(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str, key: Path | None = None) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    if key is None:
        monkeypatch.delenv("COUNTERSIGN_SIGNING_KEY_PATH", raising=False)
    else:
        monkeypatch.setenv("COUNTERSIGN_SIGNING_KEY_PATH", str(key))
    return CliRunner().invoke(main, ["export", *args], catch_exceptions=False)


def run_verify(bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(bundle / "verify.sh")], capture_output=True, text=True, env=TOOLS_ONLY, timeout=120, check=False
    )


def stored(db: Database) -> dict[int, Any]:
    with db.engine.connect() as connection:
        return {row.sequence: row for row in connection.execute(text("SELECT * FROM ledger_entries"))}


@pytest.fixture
def bundle(signed: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    out = tmp_path / "evidence"
    result = export(
        database_url, monkeypatch, "--repo", "acme/payments", "--since", "2026-01-02", "--until", "2026-01-04",
        "--out", str(out), key=key_file(tmp_path, B, "b.pem"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"evidence bundle written to {out}: 3 dossier(s), entries 3\N{EN DASH}14, a signed checkpoint"
    )
    return out


def test_the_bundle_holds_every_entry_from_the_first_dossier_to_a_signed_checkpoint(
    bundle: Path, signed: Ledger, db: Database
) -> None:
    about = json.loads((bundle / "bundle.json").read_text())
    assert about["query"]["parameters"] == {
        "repo": "acme/payments", "since": "2026-01-02T00:00:00Z", "until": "2026-01-05T00:00:00Z"
    }  # fmt: skip
    assert about["query"]["command"] == (
        f"countersign export --since 2026-01-02T00:00:00Z --until 2026-01-05T00:00:00Z --repo acme/payments "
        f"--out {bundle}"
    )
    assert (about["dossiers"], about["entries"]["first"], about["entries"]["last"], about["entries"]["count"]) == (
        3, 3, 14, 12
    )  # fmt: skip
    assert "so that a third party can check each link" in about["entries"]["why"]
    assert about["keys"] == sorted([hex_of(A), hex_of(B)]) and about["purged"] == []

    rows = stored(db)
    with (bundle / "entries" / "chain.tsv").open() as handle:
        chain = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(r["sequence"]) for r in chain] == list(range(3, 15))
    for line in chain:
        n = int(line["sequence"])
        entry = bundle / "entries" / str(n)
        assert (bundle / "entries" / f"{n}.json").read_bytes() == rows[n].payload.encode("utf-8")  # byte for byte
        assert (line["prev_hash"], line["hash"], line["kind"]) == (rows[n].prev_hash, rows[n].hash, rows[n].kind)
        assert entry.with_suffix(".hash.bin").read_bytes() == bytes.fromhex(rows[n].hash)
        assert entry.with_suffix(".sig").read_bytes().hex() == rows[n].signature == line["signature"]
    assert [r["signed_by"] for r in chain] == [hex_of(A)] * 6 + [hex_of(B)] * 6  # 8, the hand-over, signed by A
    assert (bundle / "entries" / "8.proof.json").read_bytes().startswith(b'{"prev_hash":"')
    for name in about["keys"]:
        key = serialization.load_pem_public_key((bundle / "keys" / f"{name}.pem").read_bytes())
        assert isinstance(key, Ed25519PublicKey) and key.public_bytes_raw().hex() == name

    checkpoint = json.loads((bundle / "checkpoint.json").read_text())
    assert (checkpoint["sequence"], checkpoint["head_hash"], checkpoint["public_key"]) == (14, rows[14].hash, hex_of(B))
    assert verify_against_checkpoint(signed, checkpoint, B.public_key()).ok  # the operator's own check agrees
    assert json.loads((bundle / "verification.json").read_text())["ok"] is True

    with (bundle / "index.csv").open() as handle:
        index = list(csv.DictReader(handle))
    assert [(r["sequence"], r["repository"], r["tickets"], r["html"]) for r in index] == [
        ("3", "acme/payments", "PAY-2", "dossiers/3.html"),
        ("5", "acme/payments", "PAY-4", "dossiers/5.html"),
        ("7", "acme/payments", "PAY-6", "dossiers/7.html"),
    ]
    dossier = json.loads((bundle / "dossiers" / "5.json").read_text())
    assert dossier["evidence"]["commits"][0]["message"] == f"PAY-4: fix {LONE}"  # exactly as recorded
    assert dossier["entry"]["signature"] == rows[5].signature and dossier["entry"]["signed_by"] == hex_of(A)
    assert dossier["exported"]["files"]["entry"] == "entries/5.json"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("href"):
            self.links.append(str(found["href"]))
        if tag in ("script", "link", "img", "iframe") or found.get("src"):
            self.loads.append(tag)


def test_every_page_stands_alone_with_no_dead_link(bundle: Path) -> None:
    pages = [bundle / "index.html", *sorted((bundle / "dossiers").glob("*.html"))]
    assert len(pages) == 4
    for page in pages:
        html = page.read_text(encoding="utf-8")
        parser = Links()
        parser.feed(html)
        assert parser.loads == [], page  # styles are inline; nothing is fetched
        assert "<style>" in html
        for link in parser.links:
            if re.match(r"https://", link):
                continue  # a ticket in Jira: live wherever the reader can reach Jira
            assert (page.parent / link).is_file(), f"{page.name}: dead link {link}"
    index = (bundle / "index.html").read_text()
    assert "acme/payments" in index and "2026-01-02T00:00:00Z" in index and "3\N{EN DASH}14 (12)" in index
    page = (bundle / "dossiers" / "5.html").read_text()
    assert "Produced at 20" in page and "Refunds &lt;b&gt;fast&lt;/b&gt;" in page and "fix \ufffd" in page
    assert 'href="/' not in page and "Countersign dashboard" not in page


def commands(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.S)


def test_a_third_party_verifies_the_bundle_with_standard_tools_only(bundle: Path, tmp_path: Path) -> None:
    result = run_verify(bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "entries 3-14: 12 hashes recomputed and linked; 0 unsigned"
    assert lines[1].startswith("entry 3 follows entry 2, which is not in this bundle (hash ")
    assert lines[2] == f"key {hex_of(A)}: signed 6 entries from entry 3; compare it with the key you were given"
    assert (
        lines[3] == f"key {hex_of(B)}: signed 6 entries from entry 9; handed over at entry 8 by key {hex_of(A)[:16]}..."
    )
    assert lines[4].startswith("checkpoint of entry 14 (hash ") and lines[4].endswith(f"verified with key {hex_of(B)}")
    assert lines[-1] == "VERIFIED"

    # The commands VERIFY.md shows, run as they are written, give the same answers.
    guide = (bundle / "VERIFY.md").read_text()
    hashing, signing, handover, checkpoint = commands(guide)
    tsv = {
        line.split("\t")[0]: line.split("\t") for line in (bundle / "entries" / "chain.tsv").read_text().splitlines()
    }
    script = "set -e\n" + hashing + signing + handover.replace("NEW", hex_of(B)).replace("N.", "8.") + checkpoint
    shown = subprocess.run(
        ["bash", "-c", script], cwd=bundle, capture_output=True, text=True, env=TOOLS_ONLY, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.splitlines() == [f"{tsv['3'][4]}  -", tsv["3"][4], *["Signature Verified Successfully"] * 3]


def copy(bundle: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / name))


def test_one_byte_changed_anywhere_fails_the_check(bundle: Path, tmp_path: Path) -> None:
    edited = copy(bundle, tmp_path, "edited")
    entry = edited / "entries" / "5.json"
    data = bytearray(entry.read_bytes())
    data[data.index(b"PAY-4")] = ord("Q")
    entry.write_bytes(bytes(data))
    result = run_verify(edited)
    assert result.returncode == 1
    assert "FAIL: entry 5: SHA-256 of entries/5.json is " in result.stdout and "(edited)" in result.stdout
    assert "FAIL: entry 5: the signature does not verify with keys/" in result.stdout
    assert result.stdout.splitlines()[-1] == "NOT VERIFIED: 2 problem(s)"

    dropped = copy(bundle, tmp_path, "dropped")
    table = dropped / "entries" / "chain.tsv"
    table.write_text("".join(line for line in table.read_text().splitlines(True) if not line.startswith("9\t")))
    result = run_verify(dropped)
    assert result.returncode == 1 and "FAIL: entry 10 follows entry 8: the entries between them are missing" in (
        result.stdout
    )

    checkpoint = copy(bundle, tmp_path, "checkpoint")
    signed = checkpoint / "checkpoint.signed.json"
    signed.write_text(signed.read_text().replace('"sequence":14', '"sequence":15'))
    result = run_verify(checkpoint)
    assert result.returncode == 1
    assert "FAIL: the checkpoint is of entry 15, the entries end at 14" in result.stdout
    assert "FAIL: the checkpoint's signature does not verify" in result.stdout

    swapped = copy(bundle, tmp_path, "swapped")
    shutil.copy(swapped / "keys" / f"{hex_of(A)}.pem", swapped / "keys" / f"{hex_of(B)}.pem")
    result = run_verify(swapped)
    assert result.returncode == 1 and f"FAIL: keys/{hex_of(B)}.pem holds key {hex_of(A)}" in result.stdout

    forged = copy(bundle, tmp_path, "forged")
    proof = forged / "entries" / "8.proof.sig"
    proof.write_bytes(bytes(64))
    result = run_verify(forged)
    assert result.returncode == 1 and "FAIL: entry 8: the new key's proof does not verify" in result.stdout


def test_an_older_period_after_a_purge_says_which_entries_were_purged(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ledger = Ledger(db, clock=Clock(datetime(2015, 3, 1, tzinfo=UTC), timedelta(hours=12)))
    fill(ledger, range(1, 7))  # 2015-03-01 12:00 to 2015-03-04
    # 1-5 purged, 6 kept (the newest), 7 records it
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), datetime.now(UTC)))
    out = tmp_path / "old"
    result = export(database_url, monkeypatch, "--since", "2015-03-01", "--until", "2015-03-31", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "UNSIGNED checkpoint" in result.output
    about = json.loads((out / "bundle.json").read_text())
    assert (about["dossiers"], about["entries"]["first"], about["entries"]["last"]) == (1, 6, 7)
    assert (about["purged"][0]["first"], about["purged"][0]["last"], about["purged"][0]["recorded_by"]) == (1, 5, 7)
    assert about["purged_notice"].startswith(
        "Entries 1\N{EN DASH}5 (recorded 2015-03-01 to 2015-03-03) were purged past retention: this period reaches "
        "into them, so its dossiers recorded up to 2015-03-03 12:00 UTC are no longer in the ledger"
    )
    assert "Purged entries" in (out / "index.html").read_text() and "purged on" in (out / "VERIFY.md").read_text()
    verified = run_verify(out)
    assert verified.returncode == 0, verified.stdout
    assert "entry 5 was purged; a retention_purge entry in this bundle recorded its hash" in verified.stdout
    assert "UNSIGNED, compare its hash with one you hold" in verified.stdout

    later = tmp_path / "later"
    assert (
        export(
            database_url, monkeypatch, "--since", "2016-01-01", "--until", "2030-01-01", "--out", str(later)
        ).exit_code
        == 0
    )
    notice = json.loads((later / "bundle.json").read_text())["purged_notice"]
    assert notice.endswith("before this period: none of its dossiers is affected.")
    assert "No deployment decision matches this query." in (later / "index.html").read_text()
    assert run_verify(later).stdout.splitlines()[0].startswith("checkpoint of entry 7")


def test_a_broken_ledger_still_exports_and_says_so(
    signed: Ledger, db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, 'dave', 'eve') WHERE sequence = 9")
        )
    out = tmp_path / "broken"
    result = export(database_url, monkeypatch, "--since", "2026-01-01", "--until", "2026-02-01", "--out", str(out))
    assert result.exit_code == 1 and "warning: ledger BROKEN: entry 9: hash does not match its content" in result.output
    about = json.loads((out / "bundle.json").read_text())
    assert about["checkpoint"] is None and "does not verify" in about["checkpoint_missing"]
    assert not (out / "checkpoint.json").exists() and about["entries"]["last"] == 14  # the head, unverified
    verified = run_verify(out)
    assert verified.returncode == 1 and "FAIL: entry 9: SHA-256 of entries/9.json" in verified.stdout
    assert "BROKEN: entry 9" in (out / "index.html").read_text()


def test_export_options_and_where_a_bundle_may_go(
    signed: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    period = ["--since", "2026-01-01", "--until", "2026-01-02"]
    for args, message in [
        (["--id", "3", "--out", str(tmp_path / "x")], "no --id, --format or --output"),
        (["--format", "html", *period, "--out", str(tmp_path / "x")], "no --id, --format or --output"),
        (["--since", "2026-01-01", "--out", str(tmp_path / "x")], "give --since and --until"),
        (["--repo", "acme/payments", "--format", "html"], "or --out DIR for a bundle"),
    ]:
        result = export(database_url, monkeypatch, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    result = export(database_url, monkeypatch, *period, "--out", str(used))
    assert result.exit_code == 1 and "exists and is not an empty directory" in result.output
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_reading_a_chunk_at_a_time_writes_the_same_bundle(signed: Ledger, tmp_path: Path) -> None:
    query = DeploymentQuery(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 2, 1, tzinfo=UTC), limit=None)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    small = write_bundle(signed, query, tmp_path / "small", command="countersign export", now=now, chunk=2)
    whole = write_bundle(signed, query, tmp_path / "whole", command="countersign export", now=now, chunk=1000)
    assert (small.dossiers, small.first, small.last) == (whole.dossiers, whole.first, whole.last) == (12, 2, 14)
    assert tree(tmp_path / "small") == tree(tmp_path / "whole")
    assert len(list((tmp_path / "small" / "dossiers").glob("*.json"))) == 12


def test_a_period_as_a_json_array_is_written_a_dossier_at_a_time(
    signed: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "period.json"
    args = ["--repo", "acme/web", "--since", "2026-01-01", "--until", "2026-02-01", "--output", str(out)]
    result = export(database_url, monkeypatch, *args)
    assert result.exit_code == 0 and result.output == f"6 dossier(s) written to {out}\n"
    documents = json.loads(out.read_text())
    keyless = Ledger(signed.db)  # as the command ran: without the signing key
    verification = keyless.verify()
    views = [keyless.at_sequence(d["entry"]["sequence"]) for d in documents]
    assert documents == [build_dossier(v, verification, keyless) for v in views if v is not None]
    assert [d["summary"]["repository"] for d in documents] == ["acme/web"] * 6
    empty = export(database_url, monkeypatch, "--repo", "acme/none", "--since", "2026-01-01")
    assert empty.output == "[]\n"


def test_a_dossier_the_deploy_gate_wrote_verifies_in_its_bundle(
    live_app: Any, repo: str, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from test_dossier import release

    sha, entry_id = release(live_app, repo)
    today = datetime.now(UTC).date()
    out = tmp_path / "gate"
    args = ["--repo", repo, "--since", today.isoformat(), "--until", today.isoformat(), "--out", str(out)]
    # The variables the app reads: the bundle's pages link to GitHub and Jira as the dossier page does.
    monkeypatch.setenv("GITHUB_API_URL", live_app.github.url)
    monkeypatch.setenv("JIRA_URL", live_app.jira.url)
    result = export(database_url, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    (page,) = (out / "dossiers").glob("*.html")
    html = page.read_text()
    assert sha in html and "Carol Approver" in html and "Ledger verified" in html and "Produced at" in html
    assert f'href="{live_app.github.url}/{repo}/commit/{sha}"' in html
    assert f'href="{live_app.jira.url}/browse/PAY-1"' in html
    assert "<script" not in html  # the commit message that tries to inject one is escaped
    (line,) = list(csv.DictReader((out / "index.csv").open()))
    assert line["id"] == str(entry_id) and line["sha"] == sha
    verified = run_verify(out)
    assert verified.returncode == 0 and verified.stdout.splitlines()[-1] == "VERIFIED", verified.stdout
