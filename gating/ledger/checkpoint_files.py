"""Signed checkpoints published as files: one new file per checkpoint, written atomically, never overwritten.

A checkpoint catches a truncated tail or a rebuilt chain only if it is kept where whoever can rewrite the
database cannot rewrite it too; point COUNTERSIGN_CHECKPOINT_DIR at other storage (a mounted bucket, a
write-once volume, a directory another system collects).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from gating.ledger.checkpoints import make_checkpoint
from gating.ledger.store import Ledger

log = logging.getLogger(__name__)


class LedgerBroken(Exception):
    """The chain does not verify: a checkpoint would vouch for it, so none is taken."""


def directory_problem(directory: str | Path) -> str | None:
    """Why checkpoints could not be written into `directory`, or None. Creates nothing but a probe it removes."""
    path = Path(directory)
    if not path.exists():
        return f"COUNTERSIGN_CHECKPOINT_DIR={directory}: the directory does not exist"
    if not path.is_dir():
        return f"COUNTERSIGN_CHECKPOINT_DIR={directory}: not a directory"
    try:
        # A real write, not os.access: read-only mounts and ACLs answer only to a try.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".countersign-probe-"):
            pass
    except OSError as exc:
        return f"COUNTERSIGN_CHECKPOINT_DIR={directory}: cannot write there ({exc.strerror or exc})"
    return None


def file_name(checkpoint: dict[str, Any], now: datetime) -> str:
    """`checkpoint-20261201T100000Z-<sequence>.json`: sorts by time, says which entry it vouches for."""
    return f"checkpoint-{now.strftime('%Y%m%dT%H%M%SZ')}-{checkpoint['sequence']}.json"


def write_checkpoint_file(ledger: Ledger, directory: str | Path, now: datetime | None = None) -> Path:
    """Verify the chain, take a (signed) checkpoint of its head and write it as a new file; its path."""
    result = ledger.verify()
    if not result.ok:
        raise LedgerBroken(f"ledger BROKEN, no checkpoint written: {result.reason}")
    moment = now or ledger.clock()
    data = make_checkpoint(ledger, ledger.signing_key, now=moment)
    return publish(data, directory, file_name(data, moment))


def publish(checkpoint: dict[str, Any], directory: str | Path, name: str) -> Path:
    """Write `checkpoint` as `name` in `directory`, atomically: complete or absent, never over an existing file.

    Written to a temporary file in the same directory, flushed to disk, then hard-linked to its name (a
    link, unlike a rename, fails rather than replace a file that is there); a name taken gets a suffix.
    """
    folder = Path(directory)
    text = json.dumps(checkpoint, indent=2, sort_keys=True) + "\n"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        stem, suffix = name.rsplit(".", 1)
        for attempt in itertools.count():
            target = folder / (name if attempt == 0 else f"{stem}-{attempt}.{suffix}")
            try:
                os.link(temporary, target)
            except FileExistsError:
                continue
            _sync_directory(folder)
            return target
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends
    finally:
        os.unlink(temporary)


def _sync_directory(folder: Path) -> None:
    """Make the new name durable too (a crash could otherwise lose the link)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_periodic_checkpoint(ledger: Ledger, directory: str | Path) -> Path | None:
    """The periodic job: the file written, or None (logged) when the chain does not verify."""
    try:
        path = write_checkpoint_file(ledger, directory)
    except LedgerBroken as exc:
        log.error("checkpoint.not_written", extra={"reason": str(exc)})
        return None
    log.info("checkpoint.written", extra={"path": str(path)})
    return path
