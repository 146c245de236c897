"""Retention and legal hold: purging the oldest entries past retention, verification across the recorded gap,
tampering still caught after a purge, holds, dry runs, key changes and checkpoints on both sides of a purge."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ledger_helpers
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import DASH, A, B, X, hex_of, key_file, sql
from sqlalchemy import text
from test_layout import impurities

from gating.cli import main
from gating.db import Database
from gating.ledger import (
    GENESIS,
    Ledger,
    canonical_json,
    entry_hash,
    make_checkpoint,
    purges,
    verify,
    verify_against_checkpoint,
)
from gating.ledger.chain import find_purged, sign_hash
from gating.ledger.checkpoints import checkpoint_of
from gating.ledger.purges import (
    KeySnapshot,
    PurgedRange,
    PurgeRecordError,
    Retention,
    hashes_digest,
    join,
    purge_payload,
    purge_record,
)
from gating.ledger.retention import RetentionError, list_holds, place_hold, plan_purge, purge
from gating.ledger.signing import KEY_CHANGE, key_change_payload

T0 = datetime(2015, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def test_the_retention_modules_that_decide_are_pure() -> None:
    source = (Path(purges.__file__)).read_text()
    assert impurities(source) == []


# -- the retention rule, pure --------------------------------------------------------------------------------------


def test_retention_periods_are_days_weeks_or_calendar_years() -> None:
    at = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert Retention.parse("7y").cutoff(at) == datetime(2017, 2, 28, 12, 0, tzinfo=UTC)  # no 29 February in 2017
    assert Retention.parse("4y").cutoff(at) == datetime(2020, 2, 29, 12, 0, tzinfo=UTC)
    assert Retention.parse("2w").cutoff(at) == at - timedelta(days=14)
    assert Retention.parse(" 30d ").cutoff(at) == at - timedelta(days=30)
    assert (str(Retention.parse("7y")), Retention.parse("7y").describe()) == ("7y", "7 years")
    assert Retention.parse("1d").describe() == "1 day" and Retention.parse("1w").describe() == "1 week"


@pytest.mark.parametrize("value", ["0d", "0y", "12h", "7", "-1d", "1.5y", "", "7Y", "y", "100000d"])
def test_a_retention_period_under_a_day_or_in_other_units_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="at least 1d"):
        Retention.parse(value)


def test_the_hashes_digest_is_sha256sum_of_the_hash_lines() -> None:
    assert hashes_digest([H1, H2]) == hashlib.sha256(f"{H1}\n{H2}\n".encode()).hexdigest()


# -- a chain built as the store writes it, pure --------------------------------------------------------------------


@dataclass(frozen=True)
class E:
    sequence: int
    prev_hash: str
    payload: str
    hash: str
    signature: str | None


class Chain:
    """Entries exactly as the store writes them, and purges exactly as `retention.purge` records them."""

    def __init__(self) -> None:
        self.entries: list[E] = []
        self.at = T0

    def head(self) -> tuple[int, str]:
        return (self.entries[-1].sequence, self.entries[-1].hash) if self.entries else (0, GENESIS)

    def write(self, kind: str, payload: dict[str, Any], signer: Ed25519PrivateKey | None) -> E:
        self.at += timedelta(days=1)
        sequence, prev = self.head()
        envelope = {
            "v": 2,
            "kind": kind,
            "sequence": sequence + 1,
            "recorded_at": self.at,
            "index": {},
            "payload": payload,
        }
        text_ = canonical_json(envelope)
        digest = entry_hash(prev, text_)
        entry = E(sequence + 1, prev, text_, digest, sign_hash(signer, digest) if signer else None)
        self.entries.append(entry)
        return entry

    def add(self, count: int = 1, signer: Ed25519PrivateKey | None = None) -> None:
        for _ in range(count):
            self.write("deployment_decision", {"tickets": [{"key": f"PAY-{self.head()[0] + 1}"}]}, signer)

    def change(self, new: Ed25519PrivateKey, signer: Ed25519PrivateKey, previous: Ed25519PrivateKey | None) -> E:
        payload = key_change_payload(new, self.head()[1], hex_of(previous) if previous else None)
        return self.write(KEY_CHANGE, payload, signer)

    def purge(self, upto: int, signer: Ed25519PrivateKey | None = None, anchor: Ed25519PrivateKey | None = None) -> E:
        result = verify(self.entries, anchor.public_key() if anchor else None, snapshot_at={upto})
        assert result.ok, result.reason
        gone = [e for e in self.entries if e.sequence <= upto]
        times = [datetime.fromisoformat(json.loads(e.payload)["recorded_at"]) for e in gone]
        payload = purge_payload(
            rule=Retention.parse("7y"),
            cutoff=self.at,
            run_at=self.at,
            first=gone[0].sequence,
            prev_hash=gone[0].prev_hash,
            hashes=[e.hash for e in gone],
            first_recorded_at=times[0],
            last_recorded_at=times[-1],
            state=dict(result.snapshots)[upto],
            carried=[r for r in result.purged if r.listed_by <= upto],
        )
        assert upto < self.head()[0], "a purge keeps the newest entry, as retention.purge does"
        self.entries = [e for e in self.entries if e.sequence > upto]
        return self.write(purges.KIND, payload, signer)


def rehash(entries: list[E], index: int, payload: str | None = None, prev_hash: str | None = None) -> list[E]:
    """Entry `index` changed and re-hashed, and every hash after it recomputed: a forger without the keys."""
    out = list(entries[:index])
    for n, entry in enumerate(entries[index:]):
        prev = (prev_hash if prev_hash is not None else entry.prev_hash) if n == 0 else out[-1].hash
        body = payload if (n == 0 and payload is not None) else entry.payload
        out.append(replace(entry, prev_hash=prev, payload=body, hash=entry_hash(prev, body)))
    return out


def test_a_purged_prefix_verifies_and_is_named() -> None:
    chain = Chain()
    chain.add(6)
    record = chain.purge(3)
    result = verify(chain.entries)
    assert result.ok, result.reason
    assert (result.count, result.last_sequence, record.sequence) == (4, 7, 7)
    (gap,) = result.purged
    assert (gap.first, gap.last, gap.count, gap.prev_hash, gap.recorded_by) == (1, 3, 3, GENESIS, 7)
    assert gap.describe() == f"entries 1{DASH}3 purged on 2015-01-08, recorded by entry 7"
    document = result.as_dict()
    assert document["last_sequence"] == 7 and document["purged"][0]["last_hash"] == gap.last_hash
    assert "purged" not in verify(Chain().entries).as_dict()  # a ledger never purged reads as it always did
    assert purges.describe_purges(result.purged) == gap.describe()


def test_every_other_change_is_still_caught_after_a_purge() -> None:
    chain = Chain()
    chain.add(6)
    before = list(chain.entries)
    chain.purge(3)
    entries = chain.entries  # 4, 5, 6 and the purge record, 7

    deleted = [e for e in entries if e.sequence != 4]
    result = verify(deleted)
    assert (result.ok, result.first_bad_sequence) == (False, 4)
    assert f"missing; entry 5 follows the purged entries 1{DASH}3" in (result.reason or "")

    restored = [before[1], *entries]  # entry 2 put back
    result = verify(restored)
    assert result.first_bad_sequence == 2 and "present, but recorded as purged on 2015-01-08 by entry 7" in (
        result.reason or ""
    )

    relinked = rehash(entries, 0, prev_hash=H1)  # entry 4 re-hashed onto another predecessor, and all after it
    result = verify(relinked)
    assert result.first_bad_sequence == 4 and "the hash of entry 3 that the purge recorded" in (result.reason or "")

    unrecorded = entries[:-1]  # the purge record deleted: the gap is a gap again
    result = verify(unrecorded)
    assert (result.first_bad_sequence, result.count) == (1, 0)
    assert "missing; entry 4 follows 0" in (result.reason or "")

    edited = [entries[0], replace(entries[1], payload=entries[1].payload.replace("PAY-5", "PAY-9")), *entries[2:]]
    assert verify(edited).first_bad_sequence == 5


def test_a_forged_purge_record_is_caught() -> None:
    chain = Chain()
    chain.change(A, A, None)
    chain.add(6, A)
    chain.purge(3, A)  # 1-3 purged, 4-7 kept, 8 records it
    record = json.loads(chain.entries[-1].payload)
    # Delete entry 4 too and claim the purge took it: the record is consistent, but no longer what A signed.
    record["payload"]["range"] |= {"last": 4, "count": 4, "last_hash": chain.entries[0].hash}
    record["payload"]["range"]["hashes"].append(chain.entries[0].hash)
    forged = rehash(chain.entries[1:], len(chain.entries) - 2, payload=canonical_json(record))
    result = verify(forged)
    assert result.first_bad_sequence == 8 and "signature does not verify with key" in (result.reason or "")

    late = json.loads(chain.entries[-1].payload)
    late["payload"]["range"] |= {"first": 2, "count": 2, "prev_hash": H1}
    late["payload"]["range"]["hashes"] = late["payload"]["range"]["hashes"][1:]
    result = verify(rehash(chain.entries, len(chain.entries) - 1, payload=canonical_json(late)))
    assert result.first_bad_sequence == 8 and "no purge record lists entries 1" in (result.reason or "")


def valid_record() -> dict[str, Any]:
    state = KeySnapshot((hex_of(A),), True, 2, True)
    payload = purge_payload(
        rule=Retention.parse("7y"), cutoff=T0, run_at=T0, first=3, prev_hash=H3, hashes=[H1, H2],
        first_recorded_at=T0, last_recorded_at=T0, state=state,
    )  # fmt: skip
    return {"v": 2, "kind": purges.KIND, "sequence": 9, "recorded_at": T0, "index": {}, "payload": payload}


def carried(**changes: Any) -> dict[str, Any]:
    return {
        "first": 1, "last": 2, "prev_hash": GENESIS, "last_hash": H3, "hashes_sha256": H3, "rule": "7y",
        "first_recorded_at": "2015-01-01T00:00:00Z", "last_recorded_at": "2015-01-01T00:00:00Z",
        "purged_at": "2016-01-01T00:00:00Z", "recorded_by": 2,
    } | changes  # fmt: skip


def mutated(path: str, value: Any) -> str:
    record = valid_record()
    target: Any = record
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return canonical_json(record)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("kind", "deployment_decision", "not a retention purge envelope"),
        ("payload", "nothing", "has no payload"),
        ("payload.rule", [], "rule is not an object"),
        ("payload.rule.older_than", KeyError, "rule.older_than is missing"),
        ("payload.range", None, "range is not an object"),
        ("payload.range.first", 0, "range.first 0 is not a sequence"),
        ("payload.range.last", True, "range.last True is not a sequence"),
        ("payload.range.first", 5, "range ends at 4, before its first entry 5"),
        ("payload.range.prev_hash", "x", "range.prev_hash 'x' is not a SHA-256"),
        ("payload.range.first_recorded_at", 5, "range.first_recorded_at is missing"),
        ("payload.range.hashes", [H1], "must list the 2 purged entries' hashes"),
        ("payload.range.hashes", [H1, "A" * 64], r"range.hashes\[1\]"),
        ("payload.range.last_hash", H3, "last_hash is not the last of range.hashes"),
        ("payload.range.last", 9, "must list the 7 purged"),
        ("payload.signing", [], "signing is not an object"),
        ("payload.signing.keys_in_force", ["beef"], "keys_in_force is not a list of keys"),
        ("payload.signing.known", "yes", "must be true or false"),
        ("payload.signing.signed_since", 0, "signed_since 0 is not a sequence"),
        ("payload.carried", {}, "carried is not a list"),
        ("payload.carried", [carried(first=1, last=3)], r"carried\[0\] is not a range purged before this one"),
        ("payload.carried", [carried(recorded_by=5)], r"carried\[0\] is not a range purged before this one"),
        ("payload.carried", [carried(recorded_by="2")], r"carried\[0\].recorded_by"),
        ("payload.carried", [carried(hashes_sha256=None)], r"carried\[0\].hashes_sha256"),
        ("payload.carried", [carried(rule=7)], r"carried\[0\].rule is missing"),
        ("payload.carried", [carried(purged_at=None)], r"carried\[0\].purged_at is missing"),
    ],
)
def test_malformed_purge_records_are_refused(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        purge_record(9, H3, mutated(path, value))


def test_purge_records_that_cannot_be_read_at_all() -> None:
    assert purges.is_purge(json.loads(canonical_json(valid_record()))) and not purges.is_purge([])
    with pytest.raises(ValueError, match="content is not JSON"):
        purge_record(9, H3, "{not json")
    record = valid_record()
    record["payload"]["range"] |= {"first": 8, "last": 9, "count": 2}
    with pytest.raises(ValueError, match="records entries up to 9, but is entry 9 itself"):
        purge_record(9, H3, canonical_json(record))
    record = valid_record()
    record["recorded_at"] = 5
    with pytest.raises(ValueError, match="recorded_at is missing"):
        purge_record(9, H3, canonical_json(record))
    ranges, hashes = purge_record(9, H3, canonical_json(valid_record()))
    assert hashes == [H1, H2] and ranges[0].state == KeySnapshot((hex_of(A),), True, 2, True)
    assert ranges[0].as_dict()["hashes_sha256"] == hashes_digest([H1, H2]) and ranges[0].listed_hash == H3
    with pytest.raises(PurgeRecordError, match="entry 4: retention purge record is malformed: recorded_at is missing"):
        find_purged([E(4, GENESIS, canonical_json({"v": 2, "kind": purges.KIND}), H1, None)])


def gap(first: int, last: int, prev: str, last_hash: str, by: int, state: KeySnapshot | None = None) -> PurgedRange:
    times = "2015-01-01T00:00:00Z"
    return PurgedRange(first, last, prev, last_hash, H3, times, times, "7y", "2016-01-01T00:00:00Z", by, by, H3, state)


def test_purge_records_must_describe_one_linked_prefix() -> None:
    state = KeySnapshot((), False, None, False)
    assert join([]) is None
    joined = join([gap(3, 4, H1, H2, 9, state), gap(1, 2, GENESIS, H1, 5)])
    assert joined is not None and (joined.last, joined.last_hash, joined.state) == (4, H2, state)
    assert joined.covering(1).recorded_by == 5 and joined.covering(4).recorded_by == 9
    assert joined.listing_hashes() == {5: H3, 9: H3}
    cases = [
        ([gap(2, 3, GENESIS, H1, 5, state)], f"entry 5: records entries 2{DASH}3 purged, but no purge record lists"),
        ([gap(1, 2, GENESIS, H1, 5), gap(2, 3, H1, H2, 9, state)], f"entries 2{DASH}3 are recorded as purged twice"),
        ([gap(1, 2, H1, H2, 5, state)], f"purged range 1{DASH}2 does not link to the start of the chain"),
        ([gap(1, 2, GENESIS, H1, 5), gap(3, 3, H2, H3, 9, state)], "does not link to entry 2's recorded hash"),
        ([gap(1, 2, GENESIS, H1, 5)], "the latest purged range is carried, but its record is missing"),
    ]
    for ranges, message in cases:
        with pytest.raises(PurgeRecordError, match=message):
            join(ranges)


def test_verification_meets_the_purge_records_it_relied_on() -> None:
    chain = Chain()
    chain.add(6)
    chain.purge(3)
    described = find_purged(chain.entries)
    result = verify(chain.entries[:-1], purged=described, first_change=None)
    assert result.first_bad_sequence == 7 and "missing; it records a purge the chain relies on" in (result.reason or "")

    changed = chain.entries[-1].payload.replace('"count":3', '"count":3,"note":"again"')
    entries = rehash(chain.entries, len(chain.entries) - 1, payload=changed)  # read once, then rewritten
    result = verify(entries, purged=described, first_change=None)
    assert result.first_bad_sequence == 7 and "changed while the chain was being verified" in (result.reason or "")

    # A purge record the walk meets without having read it first (appended meanwhile).
    intact = Chain()
    intact.add(3)
    record = json.loads(canonical_json(valid_record()))
    intact.write(purges.KIND, record["payload"], None)
    result = verify(intact.entries, purged=None, first_change=None)
    assert result.first_bad_sequence == 4 and "not read before the walk" in (result.reason or "")


def test_signatures_verify_across_a_purge_with_the_keys_it_recorded() -> None:
    chain = Chain()
    chain.add(2)  # unsigned, before signing began
    chain.change(A, A, None)  # 3: signing turned on with A
    chain.add(2, A)
    chain.change(B, A, A)  # 6: B takes over, A may sign until B does
    chain.add(1, A)  # 7
    chain.add(1, B)  # 8: B signs, A is retired
    chain.purge(7, B)  # 9: the purge record, signed by B
    described = find_purged(chain.entries)
    assert described is not None and described.state == KeySnapshot((hex_of(B), hex_of(A)), True, 3, True)
    assert dict(verify(chain.entries, snapshot_at={9}).snapshots)[9].keys == (hex_of(B),)
    chain.add(1, B)  # 10

    result = verify(chain.entries, B.public_key())
    assert result.ok and result.signatures_checked, result.reason
    assert [(s.first, s.last, s.public_key) for s in result.spans] == [(8, 10, hex_of(B))]

    old = verify(chain.entries, A.public_key())  # A signed only purged entries: it vouches for nothing left
    assert not old.ok and f"entries 1{DASH}7 were purged: give a key that signs the entries left" in (old.reason or "")

    retired = Chain()
    retired.entries, retired.at = list(chain.entries), chain.at
    retired.add(1, A)
    result = verify(retired.entries)
    assert result.first_bad_sequence == 11 and "signature does not verify with key" in (result.reason or "")
    unsigned = Chain()
    unsigned.entries, unsigned.at = list(chain.entries), chain.at
    unsigned.add(1)
    result = verify(unsigned.entries)
    assert result.first_bad_sequence == 11 and "the ledger is signed since entry 3" in (result.reason or "")


def test_a_purge_during_a_rotation_keeps_the_old_key_allowed_until_the_new_one_signs() -> None:
    chain = Chain()
    chain.change(A, A, None)
    chain.add(1, A)
    chain.change(B, A, A)  # 3
    chain.add(2, A)  # 4, 5
    chain.purge(4, A)  # 6: still by A, as a running app with the old key would
    chain.add(1, A)  # 7: A may still sign
    chain.add(1, B)  # 8: B signs, A is retired
    result = verify(chain.entries, A.public_key())
    assert result.ok and result.signatures_checked, result.reason
    assert [(s.first, s.last, s.public_key) for s in result.spans] == [(5, 7, hex_of(A)), (8, 8, hex_of(B))]


def test_a_purge_of_entries_signed_by_an_unrecorded_key() -> None:
    chain = Chain()
    chain.add(3, A)  # signed before key changes were recorded: no key change names A
    chain.purge(2, A)  # verified without a key: the record knows no key
    described = find_purged(chain.entries)
    assert described is not None and described.state == KeySnapshot((), False, None, False)
    assert verify(chain.entries, A.public_key()).signatures_checked is True  # the key given is the key
    unchecked = verify(chain.entries)
    assert unchecked.ok and [s.state for s in unchecked.spans] == ["unchecked"]
    assert not verify(chain.entries, X.public_key()).ok
    chain.change(B, A, A)  # a key change later names A as the key before it
    chain.add(1, B)
    result = verify(chain.entries)
    assert result.ok and result.keys == (hex_of(A), hex_of(B)), result.reason


# -- the store, holds, purges and the CLI --------------------------------------------------------------------------


class Clock(ledger_helpers.Clock):
    """Ten days per entry from 2015: the entries are past a 7-year retention by the time these tests run."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(days=10)) -> None:
        super().__init__(start, step)


def fill(ledger: Ledger, repos: list[str]) -> None:
    for n, repo in enumerate(repos, 1):
        ledger.append(
            "deployment_decision",
            {"repository": repo, "tickets": [{"key": f"PAY-{n}", "status": "Approved"}], "decision": "approved"},
            index={"repository": repo, "environment": "production", "deployment_id": n, "decision": "approved"},
        )


def rows(db: Database, table: str = "ledger_entries") -> list[tuple[Any, ...]]:
    with db.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


def kinds(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as connection:
        found = connection.execute(text("SELECT sequence, kind FROM ledger_entries ORDER BY sequence"))
        return [(int(s), str(k)) for s, k in found]


def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str, key: Path | None = None) -> Any:
    monkeypatch.setenv("DATABASE_URL", database_url)
    if key is not None:
        monkeypatch.setenv("COUNTERSIGN_SIGNING_KEY_PATH", str(key))
    else:
        monkeypatch.delenv("COUNTERSIGN_SIGNING_KEY_PATH", raising=False)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_purge_with_a_hold_in_place_then_verify_names_the_purged_range(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = key_file(tmp_path, A)
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, ["acme/payments"] * 5 + ["acme/legacy"] + ["acme/payments"] * 3)  # entry 1 turns signing on
    held = cli(database_url, monkeypatch, "hold", "add", "--repo", "acme/legacy", "--reason", "SEC inquiry 42", key=key)
    assert held.exit_code == 0, held.output
    assert held.output == "legal hold 1 placed on repository acme/legacy, recorded by entry 11\n"

    result = cli(database_url, monkeypatch, "purge", "--older-than", "7y", key=key)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"entries 1{DASH}6 (6, recorded 2015-01-11 to 2015-02-20) are older than 7 years")
    assert lines[1].startswith("kept past retention: 4 entries from entry 7 on, which is the first entry under legal")
    assert (
        lines[2]
        == "legal hold 1 (repository acme/legacy: SEC inquiry 42) keeps 1 entry past retention, the first entry 7"
    )
    assert lines[3] == f"entries 1{DASH}6 purged, recorded by entry 12"
    assert [k for _s, k in kinds(db)][-2:] == ["legal_hold", "retention_purge"] and kinds(db)[0] == (
        7,
        "deployment_decision",
    )

    verified = cli(database_url, monkeypatch, "verify", key=key)
    assert verified.exit_code == 0, verified.output
    today = datetime.now(UTC).date().isoformat()
    assert verified.output.splitlines()[:4] == [
        f"ledger OK: 6 entries, head {Ledger(db).head()[1]}",
        f"entries 1{DASH}6 purged on {today}, recorded by entry 12",
        f"entries 7{DASH}12 signed by key {hex_of(A)[:16]}…",
        "signatures verified",
    ]
    record = Ledger(db).at_sequence(12)
    assert record is not None
    data = record.data
    assert data["rule"]["older_than"] == "7y" and data["range"]["first"] == 1 and len(data["range"]["hashes"]) == 6
    assert data["held"][0] | {"placed_at": None} == {
        "hold": 1, "repository": "acme/legacy", "ticket": None, "reason": "SEC inquiry 42", "placed_at": None,
        "placed_entry": 11, "first_held_sequence": 7, "entries_kept": 1,
    }  # fmt: skip
    assert data["kept_past_retention"] == {"first": 7, "last": 10, "count": 4}
    assert data["signing"] == {"keys_in_force": [hex_of(A)], "known": True, "signed_since": 1, "key_changes": True}
    as_json = json.loads(cli(database_url, monkeypatch, "verify", "--json", key=key).output)
    assert as_json["purged"][0]["recorded_by"] == 12 and as_json["last_sequence"] == 12

    # Lifting the hold lets the next purge go on; held entries and the hold's own record go only then.
    lifted = cli(database_url, monkeypatch, "hold", "remove", "1", key=key)
    assert lifted.output == "legal hold 1 on repository acme/legacy removed, recorded by entry 13\n"
    again = cli(database_url, monkeypatch, "purge", "--older-than", "7y", key=key)
    assert f"entries 7{DASH}10 purged, recorded by entry 14" in again.output
    verified = cli(database_url, monkeypatch, "verify", key=key)
    assert verified.exit_code == 0, verified.output
    assert (
        f"entries 1{DASH}6 purged on {today}, recorded by entry 12; entries 7{DASH}10 purged on {today}, recorded "
        in (verified.output)
    )


def test_a_ticket_hold_keeps_the_entries_naming_it(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, ["acme/payments"] * 6)
    place_hold(ledger, ticket="PAY-4", reason="dispute about refunds")
    place_hold(Ledger(db), ticket="OPS-1", reason="a ticket no entry past retention names")  # recorded today
    plan = plan_purge(ledger, Retention.parse("7y"), NOW)
    assert (plan.first, plan.last, plan.stop, plan.stop_reason) == (1, 3, 4, "hold")
    assert [(h.hold.scope(), h.first, h.count) for h in plan.held] == [("ticket PAY-4", 4, 2)]  # the hold's record too
    purge(ledger, plan)
    assert ledger.verify().ok and kinds(db)[0] == (4, "deployment_decision")


def test_tampering_after_a_purge_is_still_detected(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, ["acme/payments"] * 8)
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))  # 1-7 purged, 8 kept (the newest), 9 records it
    assert ledger.verify().ok

    sql(db, "UPDATE ledger_entries SET payload = replace(payload, 'PAY-8', 'PAY-1') WHERE sequence = 8")
    result = cli(database_url, monkeypatch, "verify")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "ledger BROKEN at entry 8: hash does not match its content (edited)"
    assert f"entries 1{DASH}7 purged on" in result.output
    sql(db, "UPDATE ledger_entries SET payload = replace(payload, 'PAY-1', 'PAY-8') WHERE sequence = 8")
    assert ledger.verify().ok

    sql(db, "DELETE FROM ledger_entries WHERE sequence = 8")
    result = ledger.verify()
    assert result.first_bad_sequence == 8 and f"missing; entry 9 follows the purged entries 1{DASH}7" in (
        result.reason or ""
    )


def test_deleting_the_purge_record_makes_the_gap_a_deletion_again(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, ["acme/payments"] * 4)
    ledger.append("deployment_decision", {"n": 5}, index={})
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))
    sql(db, "DELETE FROM ledger_entries WHERE kind = 'retention_purge'")
    result = ledger.verify()
    assert (result.ok, result.first_bad_sequence) == (False, 1) and "missing; entry 5 follows 0" in (
        result.reason or ""
    )


def test_a_dry_run_changes_nothing(db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, ["acme/payments"] * 4)
    place_hold(ledger, repository="acme/other", reason="nothing of theirs yet")
    before = (rows(db), rows(db, "legal_holds"))
    result = cli(database_url, monkeypatch, "purge", "--older-than", "7y", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"entries 1{DASH}4 (4, recorded 2015-01-11 to 2015-02-10) are older than 7 years (recorded before "
        f"{result.output.split('recorded before ')[1].split(')')[0]})",
        "kept past retention: 1 entry from entry 5 on, which is the first entry under legal hold (only the oldest "
        "entries, up to the first one kept, are purged)",
        "legal hold 1 (repository acme/other: nothing of theirs yet) keeps 1 entry past retention, the first entry 5",
        "dry run, nothing purged; the ledger verifies",
    ]
    assert (rows(db), rows(db, "legal_holds")) == before
    sql(db, "UPDATE ledger_entries SET payload = replace(payload, 'PAY-2', 'PAY-9') WHERE sequence = 2")
    broken = cli(database_url, monkeypatch, "purge", "--older-than", "7y", "--dry-run")
    assert "dry run, nothing purged; ledger BROKEN, a purge would refuse: entry 2: hash does not match" in broken.output


def test_a_purge_refuses_a_broken_ledger_and_a_signed_one_without_its_key(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = Ledger(db, A, clock=Clock())
    fill(signed, ["acme/payments"] * 4)
    before = rows(db)
    keyless = cli(database_url, monkeypatch, "purge", "--older-than", "7y")
    assert keyless.exit_code == 1 and "the ledger is signed: purge with COUNTERSIGN_SIGNING_KEY_PATH" in keyless.output
    sql(db, "UPDATE ledger_entries SET payload = replace(payload, 'PAY-2', 'PAY-9') WHERE sequence = 3")
    with pytest.raises(RetentionError, match="ledger BROKEN, nothing purged: entry 3: hash does not match"):
        purge(signed, plan_purge(signed, Retention.parse("7y"), NOW))
    sql(db, "UPDATE ledger_entries SET payload = replace(payload, 'PAY-9', 'PAY-2') WHERE sequence = 3")
    assert rows(db) == before
    bad = cli(database_url, monkeypatch, "purge", "--older-than", "12h")
    assert bad.exit_code == 2 and "--older-than" in bad.output and "at least 1d" in bad.output


def test_nothing_to_purge(db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = cli(database_url, monkeypatch, "purge", "--older-than", "1d")
    assert empty.output.splitlines()[0].startswith("no entry is past retention and free to purge: retention keeps")
    assert empty.output.splitlines()[-1] == "nothing purged"
    ledger = Ledger(db, clock=Clock(start=datetime.now(UTC)))
    fill(ledger, ["acme/payments"] * 2)
    plan = plan_purge(ledger, Retention.parse("7y"))
    assert (plan.count, plan.chunks(), plan.kept(), plan.stop_reason) == (0, [], None, "retention")
    assert purge(ledger, plan) == []
    one = Ledger(db, clock=Clock(start=T0))
    plan = plan_purge(one, Retention.parse("7y"), NOW)
    assert plan.describe()[0].startswith("no entry is past retention")


def test_the_first_entry_within_retention_stops_the_purge(db: Database) -> None:
    ledger = Ledger(db, clock=Clock(step=timedelta(days=400)))
    fill(ledger, ["acme/payments"] * 10)  # 2016-02 … 2025-12
    plan = plan_purge(ledger, Retention.parse("7y"), NOW)
    assert (plan.first, plan.last, plan.stop, plan.stop_reason, plan.kept_past_retention) == (1, 4, 5, "retention", 0)
    assert len(plan.describe()) == 1
    assert [e.data["range"]["last"] for e in purge(ledger, plan)] == [4]


def test_holds_are_placed_listed_and_lifted(db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli(database_url, monkeypatch, "hold", "list").output == "no legal holds\n"
    cli(database_url, monkeypatch, "hold", "add", "--repo", "acme/payments", "--reason", "audit 2026")
    cli(database_url, monkeypatch, "hold", "add", "--ticket", "PAY-7", "--reason", "claim")
    listed = cli(database_url, monkeypatch, "hold", "list").output.splitlines()
    assert [line.split("\t")[:2] + line.split("\t")[3:] for line in listed] == [
        ["1", "repository acme/payments", "in place", "audit 2026"],
        ["2", "ticket PAY-7", "in place", "claim"],
    ]
    assert cli(database_url, monkeypatch, "hold", "remove", "2").exit_code == 0
    assert len(cli(database_url, monkeypatch, "hold", "list").output.splitlines()) == 1
    every = cli(database_url, monkeypatch, "hold", "list", "--all").output.splitlines()
    assert every[1].split("\t")[3].startswith("removed ")
    assert [k for _s, k in kinds(db)] == ["legal_hold", "legal_hold", "legal_hold_released"]
    record = Ledger(db).at_sequence(3)
    assert record is not None and record.data["hold"] == 2 and record.data["ticket"] == "PAY-7"
    assert [h.id for h in list_holds(db, include_lifted=True)] == [1, 2]

    for args, message in [
        (["hold", "add", "--reason", "x"], "give --repo R or --ticket K"),
        (["hold", "add", "--repo", "a/b", "--ticket", "PAY-1", "--reason", "x"], "give --repo R or --ticket K"),
        (["hold", "add", "--repo", "payments", "--reason", "x"], "'payments' is not a repository (owner/name)"),
        (["hold", "add", "--ticket", "pay-1", "--reason", "x"], "'pay-1' is not a Jira key"),
        (["hold", "add", "--ticket", "PAY-1", "--reason", "  "], "a hold needs a reason"),
        (["hold", "remove", "9"], "no legal hold 9"),
        (["hold", "remove", "2"], "legal hold 2 was already lifted on"),
    ]:
        result = cli(database_url, monkeypatch, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    with pytest.raises(RetentionError, match="either a repository or a ticket"):
        place_hold(Ledger(db), reason="x")


def test_a_hold_placed_while_purging_stops_the_purge(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, ["acme/payments"] * 3 + ["acme/legacy"] * 3)
    plan = plan_purge(ledger, Retention.parse("7y"), NOW)
    assert plan.last == 5
    place_hold(ledger, repository="acme/legacy", reason="late request")
    before = rows(db)
    with pytest.raises(RetentionError, match=rf"the ledger changed while purging .* entries 1{DASH}5 were not purged"):
        purge(ledger, plan)
    assert rows(db) == before


def test_long_purges_run_in_parts_and_later_purges_carry_earlier_records(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(purges, "MAX_RANGE", 3)
    ledger = Ledger(db, B, clock=Clock())
    fill(ledger, ["acme/payments"] * 8)  # 1 turns signing on, 2-9 decisions
    plan = plan_purge(ledger, Retention.parse("7y"), NOW)
    assert plan.chunks() == [(1, 3), (4, 6), (7, 8)]
    written = purge(ledger, plan)
    assert [(e.sequence, e.data["part"]) for e in written] == [
        (10, {"number": 1, "of": 3}), (11, {"number": 2, "of": 3}), (12, {"number": 3, "of": 3})
    ]  # fmt: skip
    result = ledger.verify(B.public_key())
    assert result.ok and result.signatures_checked and [r.recorded_by for r in result.purged] == [10, 11, 12]

    # Years later the purge records are past retention too: the next purge carries their ranges forward.
    later = plan_purge(ledger, Retention.parse("7y"), NOW + timedelta(days=365 * 20))
    assert (later.first, later.last, later.stop_reason) == (9, 11, "head")  # the newest entry is always kept
    ledger.append("deployment_decision", {"n": "after"}, index={})
    monkeypatch.setattr(purges, "MAX_RANGE", 10)
    later = plan_purge(ledger, Retention.parse("7y"), NOW + timedelta(days=365 * 20))
    (final,) = purge(ledger, later)
    assert [r["recorded_by"] for r in final.data["carried"]] == [10, 11, 12]
    assert kinds(db) == [(13, "deployment_decision"), (14, "retention_purge")]
    result = ledger.verify(B.public_key())
    assert result.ok and result.signatures_checked, result.reason
    assert [(r.first, r.last, r.recorded_by, r.listed_by) for r in result.purged] == [
        (1, 3, 10, 14), (4, 6, 11, 14), (7, 8, 12, 14), (9, 12, 14, 14)
    ]  # fmt: skip
    assert result.purged[0].describe().endswith("recorded by entry 10 (itself purged since; carried by entry 14)")
    ledger.append("deployment_decision", {"n": "later"}, index={})  # the key state comes from the purge record
    assert ledger.verify(B.public_key()).ok


def test_key_changes_in_the_purged_prefix(db: Database, tmp_path: Path) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, ["acme/payments"] * 2)  # 1: A turns signing on
    ledger.rotate_key(B)  # 4
    ledger = Ledger(db, B, clock=ledger.clock)
    fill(ledger, ["acme/payments"] * 2)  # 5, 6
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))  # 1-5 purged: no key change is left
    assert [k for _s, k in kinds(db)] == ["deployment_decision", "retention_purge"]
    ledger.append("deployment_decision", {"n": 8}, index={})  # signed by B, the key the purge recorded in force
    result = ledger.verify(B.public_key())
    assert result.ok and result.signatures_checked, result.reason
    old = ledger.verify(A.public_key())
    assert not old.ok and "were purged: give a key that signs the entries left" in (old.reason or "")
    rotated = ledger.rotate_key(X)  # a rotation after the purge is signed by B, as the record says
    assert rotated.data["previous_public_key"] == hex_of(B)
    assert Ledger(db, X).verify(B.public_key()).ok


def test_a_purge_during_a_rotation_records_both_keys(db: Database) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, ["acme/payments"] * 2)
    ledger.rotate_key(B)  # 4; the app keeps signing with A until restarted
    fill(ledger, ["acme/payments"] * 2)  # 5, 6 by A
    (record,) = purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))
    assert record.data["signing"]["keys_in_force"] == [hex_of(B), hex_of(A)]
    Ledger(db, B).append("deployment_decision", {"n": 8}, index={})
    assert ledger.verify(A.public_key()).ok


def test_checkpoints_taken_before_a_purge(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purges, "MAX_RANGE", 4)
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, ["acme/payments"] * 7)  # 1 signing turned on, 2-8
    at_three = checkpoint_of(3, ledger.at_sequence(3).hash, NOW, A)  # type: ignore[union-attr]
    at_seven = checkpoint_of(7, ledger.at_sequence(7).hash, NOW, A)  # type: ignore[union-attr]
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))  # 1-4 by entry 9, 5-7 by entry 10
    assert verify_against_checkpoint(ledger, at_three).ok  # compared with the hash the purge recorded
    forged = checkpoint_of(3, H1, NOW, A)
    result = verify_against_checkpoint(ledger, forged)
    assert result.first_bad_sequence == 3 and "the hash its purge recorded" in (result.reason or "")
    now = make_checkpoint(ledger, A)
    assert verify_against_checkpoint(ledger, now).ok and now["sequence"] == 10
    ahead = checkpoint_of(12, H1, NOW, A)
    result = verify_against_checkpoint(ledger, ahead)
    assert result.first_bad_sequence == 11 and "covers 12 entries but the ledger has 10 (tail truncated)" in (
        result.reason or ""
    )

    # Once the records themselves are purged, only the last hash of each range is carried forward.
    ledger.append("deployment_decision", {"n": 11}, index={})
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW + timedelta(days=365 * 20)))
    assert verify_against_checkpoint(ledger, at_seven).ok
    result = verify_against_checkpoint(ledger, at_three)
    assert not result.ok and "its hash is no longer recorded" in (result.reason or "")
    found = ledger.verify().purged[0]
    assert ledger.purged_hash(found, 4) == found.last_hash
    gone = replace(ledger.verify().purged[-1], listed_by=99, recorded_by=99)
    assert ledger.purged_hash(gone, gone.first) is None
    not_a_record = replace(gone, listed_by=11, recorded_by=11)
    assert ledger.purged_hash(not_a_record, gone.first) is None


def test_appends_go_on_when_a_purge_record_is_malformed(db: Database) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, ["acme/payments"] * 3)
    purge(ledger, plan_purge(ledger, Retention.parse("7y"), NOW))  # the key change at 1 is purged
    sql(db, "UPDATE ledger_entries SET payload = '{}' WHERE kind = 'retention_purge'")
    ledger = Ledger(db, A)  # a restarted app reads the key state again
    ledger.append("deployment_decision", {"n": 7}, index={})  # a deploy decision is still recorded
    result = ledger.verify()
    assert result.first_bad_sequence == 5 and "retention purge record is malformed: content is not a" in (
        result.reason or ""
    )
