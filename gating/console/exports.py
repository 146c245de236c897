"""Evidence bundles: one directory answering an evidence request, which a third party checks without Countersign.

`write_bundle` writes, for the deployment decisions a query selects: each dossier as JSON and as a self-contained
HTML page; an index (CSV and HTML); the ledger's verification; a checkpoint of the last entry, signed when the
signing key is at hand; the public keys; and every ledger entry from the first selected one to the checkpoint, as
its exact bytes with its hash inputs and signature in the forms `sha256sum` and `openssl pkeyutl -verify` take,
with VERIFY.md and verify.sh saying how. Everything is streamed, file by file, from entries read a chunk at a time,
so memory stays the same whatever the period.
"""

from __future__ import annotations

import csv
import json
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from gating.console.dossier_view import Links
from gating.console.dossiers import build_dossier
from gating.console.queries import DeploymentQuery, deployment_conditions, stream_deployments
from gating.console.rendering import export_script, render_export_dossier, render_export_index, render_verify_md

# Exports are made by the operator on the command line, who sees every repository; --repo narrows them.
from gating.console.scope import EVERYTHING
from gating.db import Database
from gating.ledger import Ledger, LedgerEntryView, VerifyResult, chain
from gating.ledger.checkpoints import checkpoint_of, signed_bytes
from gating.ledger.encoding import displayable, escape_lone_surrogates
from gating.ledger.purges import DASH, PurgedRange
from gating.ledger.signing import KEY_CHANGE, key_change_statement
from gating.ledger.store import public_key_from_hex
from gating.models import LedgerEntry

BUNDLE_VERSION = 1
INDEX_FIELDS = (
    "sequence",
    "id",
    "recorded_at",
    "repository",
    "environment",
    "deployment_id",
    "sha",
    "decision",
    "tickets",
    "commits",
    "entry_hash",
    "signed_by",
    "html",
    "json",
    "entry",
)
CHAIN_FIELDS = ("sequence", "kind", "recorded_at", "prev_hash", "hash", "signature", "signed_by")


class BundleError(ValueError):
    """The bundle cannot be written where asked."""


@dataclass(frozen=True)
class Bundle:
    """What was written: the dossiers, the entries `first`..`last`, the verification and the checkpoint."""

    directory: Path
    dossiers: int
    first: int | None
    last: int | None
    verification: VerifyResult
    checkpoint: dict[str, Any] | None

    def describe(self) -> str:
        entries = f"entries {self.first}{DASH}{self.last}" if self.first is not None else "no entries"
        if self.checkpoint is None:
            checkpoint = "no checkpoint (the ledger does not verify)"
        elif "signature" in self.checkpoint:
            checkpoint = "a signed checkpoint"
        else:
            checkpoint = "an UNSIGNED checkpoint (set COUNTERSIGN_SIGNING_KEY_PATH to sign it)"
        return f"{self.dossiers} dossier(s), {entries}, {checkpoint}"


def query_parameters(query: DeploymentQuery) -> dict[str, str]:
    """The query as given, each bound in UTC."""
    found = {
        "since": chain.format_time(query.since) if query.since else None,
        "until": chain.format_time(query.until) if query.until else None,
        "repo": query.repo,
        "environment": query.environment,
        "decision": query.decision,
    }
    return {name: value for name, value in found.items() if value is not None}


def _describe_query(parameters: Mapping[str, str]) -> str:
    what = " ".join(parameters[k] for k in ("repo", "environment", "decision") if k in parameters) or "all"
    since, until = parameters.get("since", "the start"), parameters.get("until", "now")
    return f"deployment decisions ({what}) recorded from {since} until {until}"


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists and is not an empty directory: give a new one, so bundles never mix")
    for sub in ("entries", "dossiers", "keys"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def _selection(db: Database, query: DeploymentQuery, through: int) -> tuple[int, int | None]:
    """How many dossiers the query selects up to `through`, and the first one's sequence."""
    conditions = [*deployment_conditions(query, EVERYTHING), LedgerEntry.sequence <= through]
    with db.session() as session:
        count, first = session.execute(select(func.count(), func.min(LedgerEntry.sequence)).where(*conditions)).one()
    return int(count), (int(first) if first is not None else None)


def _entries(db: Database, first: int, last: int, chunk: int) -> Iterator[LedgerEntryView]:
    """Entries `first`..`last` in sequence order, `chunk` rows per query."""
    after = first - 1
    while after < last:
        statement = (
            select(LedgerEntry)
            .where(LedgerEntry.sequence > after, LedgerEntry.sequence <= last)
            .order_by(LedgerEntry.sequence)
            .limit(chunk)
        )
        with db.session() as session:
            views = [LedgerEntryView.of(row) for row in session.scalars(statement)]
        if not views:
            return
        yield from views
        after = views[-1].sequence


def _pem(key_hex: str) -> bytes:
    return public_key_from_hex(key_hex).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_entry(out: Path, entry: LedgerEntryView, signer: str | None, keys: set[str]) -> list[str]:
    """The entry's bytes, hash and signature files; returns its line of entries/chain.tsv."""
    # Byte for byte what was hashed: stored text is always valid UTF-8 (the hash was computed over its UTF-8).
    (out / "entries" / f"{entry.sequence}.json").write_bytes(entry.payload.encode("utf-8"))
    (out / "entries" / f"{entry.sequence}.hash.bin").write_bytes(bytes.fromhex(entry.hash))
    signature = "-"
    if entry.signature:
        try:
            raw = chain.decode_signature(entry.signature)
        except ValueError:
            signature = entry.signature.strip() or "?"  # shown as stored; verify.sh then names the entry
        else:
            (out / "entries" / f"{entry.sequence}.sig").write_bytes(raw)
            signature = raw.hex()
    if signer is not None:
        keys.add(signer)
    if entry.kind == KEY_CHANGE:
        _write_proof(out, entry, keys)
    recorded_at = chain.format_time(entry.created_at)
    return [str(entry.sequence), entry.kind, recorded_at, entry.prev_hash, entry.hash, signature, signer or "-"]


def _write_proof(out: Path, entry: LedgerEntryView, keys: set[str]) -> None:
    """A key change's proof as openssl checks it: the statement the new key signed, and the signature."""
    try:
        change = chain.key_change_in(entry.sequence, entry.prev_hash, chain.parse(entry.payload))
        if change is None:
            return
        proof = chain.decode_signature(change.proof)
    except ValueError:
        return  # not a key change verification accepts: the bundle's verification names it, verify.sh fails it
    statement = key_change_statement(change.prev_hash, change.public_key, change.previous_public_key)
    (out / "entries" / f"{entry.sequence}.proof.json").write_bytes(statement)
    (out / "entries" / f"{entry.sequence}.proof.sig").write_bytes(proof)
    keys.add(change.public_key)


def _json_text(document: Any) -> str:
    return escape_lone_surrogates(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)) + "\n"


def _purged_notice(purged: tuple[PurgedRange, ...], query: DeploymentQuery) -> str | None:
    if not purged:
        return None
    start = datetime.fromisoformat(purged[0].first_recorded_at)
    end = datetime.fromisoformat(purged[-1].last_recorded_at)
    where = f"Entries 1{DASH}{purged[-1].last} (recorded {start:%Y-%m-%d} to {end:%Y-%m-%d}) were purged past retention"
    overlaps = (query.since is None or query.since <= end) and (query.until is None or query.until > start)
    if overlaps:
        return (
            f"{where}: this period reaches into them, so its dossiers recorded up to {end:%Y-%m-%d %H:%M} UTC are no "
            "longer in the ledger; the purge records below list their hashes."
        )
    return f"{where}, before this period: none of its dossiers is affected."


def _index_rows(path: Path) -> Iterator[dict[str, str]]:
    """index.csv read back, a line at a time, for the HTML index."""
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def write_bundle(
    ledger: Ledger,
    query: DeploymentQuery,
    out: Path,
    *,
    command: str,
    now: datetime | None = None,
    chunk: int = 500,
    links: Links | None = None,
) -> Bundle:
    """Write the evidence bundle for `query` into the new (or empty) directory `out`. Raises BundleError."""
    _prepare(out)
    produced_at = chain.format_time(now or ledger.clock())
    verification = ledger.verify()
    # The bundle ends at the entry the verification ended at, so the checkpoint vouches for what was verified.
    end = verification.last_sequence if verification.ok else ledger.head()[0]
    selected, first = _selection(ledger.db, query, end)
    keys: set[str] = set()
    count = 0
    with (out / "entries" / "chain.tsv").open("w", newline="", encoding="utf-8") as chain_file:
        rows = csv.writer(chain_file, delimiter="\t", lineterminator="\n")
        rows.writerow(CHAIN_FIELDS)
        if first is not None:
            for entry in _entries(ledger.db, first, end, chunk):
                rows.writerow(_write_entry(out, entry, verification.signer_of(entry.sequence), keys))
                count += 1
    with (out / "index.csv").open("w", newline="", encoding="utf-8") as index_file:
        index = csv.DictWriter(index_file, fieldnames=INDEX_FIELDS, lineterminator="\n")
        index.writeheader()
        for view in stream_deployments(ledger.db, query, EVERYTHING, through=end, chunk=chunk):
            index.writerow(_write_dossier(out, view, verification, ledger, produced_at, links))
    checkpoint = None
    if verification.ok:
        checkpoint = checkpoint_of(end, verification.head_hash, datetime.fromisoformat(produced_at), ledger.signing_key)
        _write_checkpoint(out, checkpoint, keys)
    for key_hex in sorted(keys):
        (out / "keys" / f"{key_hex}.pem").write_bytes(_pem(key_hex))
    parameters = query_parameters(query)
    purged_notice = _purged_notice(verification.purged, query)
    bundle = {
        "bundle_version": BUNDLE_VERSION,
        "produced_at": produced_at,
        "query": {"parameters": parameters, "description": _describe_query(parameters), "command": command},
        "dossiers": selected,
        "entries": {
            "first": first,
            "last": end if first is not None else None,
            "count": count,
            "why": "every ledger entry from the first selected dossier to the checkpoint, so that a third party can "
            "check each link of the chain between them",
        },
        "verification": {"ok": verification.ok, "reason": verification.reason, "file": "verification.json"},
        "checkpoint": checkpoint,
        "checkpoint_missing": None if checkpoint else "the ledger does not verify, so no checkpoint vouches for it",
        "keys": sorted(keys),
        "purged": [found.as_dict() for found in verification.purged],
        "purged_notice": purged_notice,
        "verify": "bash verify.sh (see VERIFY.md)",
    }
    (out / "verification.json").write_text(
        _json_text(verification.as_dict() | {"verified_at": produced_at}), encoding="utf-8"
    )
    (out / "bundle.json").write_text(_json_text(bundle), encoding="utf-8")
    with (out / "index.html").open("w", encoding="utf-8") as page:
        for piece in render_export_index(bundle, _index_rows(out / "index.csv")):
            page.write(piece)
    example = {"sequence": first if first is not None else 1}
    (out / "VERIFY.md").write_text(render_verify_md(bundle, example), encoding="utf-8")
    script = out / "verify.sh"
    script.write_bytes(export_script())
    script.chmod(0o755)
    return Bundle(out, selected, first, end if first is not None else None, verification, checkpoint)


def _write_checkpoint(out: Path, checkpoint: dict[str, Any], keys: set[str]) -> None:
    (out / "checkpoint.json").write_text(json.dumps(checkpoint, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "checkpoint.signed.json").write_bytes(signed_bytes(checkpoint))
    if "signature" in checkpoint:
        (out / "checkpoint.sig").write_bytes(bytes.fromhex(checkpoint["signature"]))
        keys.add(checkpoint["public_key"])


def _write_dossier(
    out: Path,
    view: LedgerEntryView,
    verification: VerifyResult,
    ledger: Ledger,
    produced_at: str,
    links: Links | None,
) -> dict[str, Any]:
    """dossiers/<sequence>.json and .html; returns the dossier's line of the index."""
    dossier = build_dossier(view, verification, ledger)
    name = str(view.sequence)
    files = {"html": f"dossiers/{name}.html", "json": f"dossiers/{name}.json", "entry": f"entries/{name}.json"}
    document = dossier | {"exported": {"produced_at": produced_at, "files": files}}
    (out / files["json"]).write_text(_json_text(document), encoding="utf-8")
    (out / files["html"]).write_text(render_export_dossier(dossier, produced_at, links), encoding="utf-8")
    summary = dossier["summary"]
    line = {
        "sequence": view.sequence,
        "id": view.id,
        "recorded_at": summary["recorded_at"],
        "repository": summary["repository"] or "",
        "environment": summary["environment"] or "",
        "deployment_id": summary["deployment_id"] if summary["deployment_id"] is not None else "",
        "sha": summary["sha"] or "",
        "decision": summary["decision"] or "",
        "tickets": " ".join(str(t) for t in summary["tickets"] if t),
        "commits": summary["commit_count"],
        "entry_hash": view.hash,
        "signed_by": dossier["entry"].get("signed_by") or "",
        **files,
    }
    return {k: displayable(str(v)) for k, v in line.items()}


def stream_json_array(ledger: Ledger, query: DeploymentQuery, verification: VerifyResult, handle: IO[str]) -> int:
    """The dossiers `query` selects as one JSON array, written one dossier at a time; returns how many."""
    count = 0
    for view in stream_deployments(ledger.db, query, EVERYTHING):
        text = _json_text(build_dossier(view, verification, ledger)).rstrip("\n")
        handle.write(("[\n  " if count == 0 else ",\n  ") + text.replace("\n", "\n  "))
        count += 1
    handle.write("[]\n" if count == 0 else "\n]\n")
    return count


def command_line(query: DeploymentQuery, out: Path) -> str:
    """The command that writes this bundle, with the query's bounds in UTC: what the index says produced it."""
    options = [f"--{name} {shlex.quote(value)}" for name, value in query_parameters(query).items()]
    return " ".join(["countersign export", *options, f"--out {shlex.quote(str(out))}"])
