"""Signed checkpoints written as files: periodically into COUNTERSIGN_CHECKPOINT_DIR and by `checkpoint --out`;
each a new file, complete or absent, never overwriting one; check-settings names a directory it cannot write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import ledger_helpers
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from gating.app import build_services, periodic_jobs
from gating.cli import main
from gating.db import Database
from gating.intake.periodic import Scheduler
from gating.ledger import Ledger, verify_against_checkpoint
from gating.ledger.checkpoint_files import (
    LedgerBroken,
    directory_problem,
    publish,
    write_checkpoint_file,
    write_periodic_checkpoint,
)
from gating.settings import Settings

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def fill(ledger: Ledger, count: int) -> None:
    for n in range(1, count + 1):
        ledger.append("deployment_decision", {"n": n}, index={"deployment_id": n, "decision": "approved"})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty directory of its own (the test's SQLite database lives in tmp_path)."""
    path = tmp_path / "checkpoints"
    path.mkdir()
    return path


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_checkpoint_file_is_signed_verifies_and_is_named_by_time_and_entry(db: Database, folder: Path) -> None:
    ledger = Ledger(db, KEY)
    fill(ledger, 3)
    path = write_checkpoint_file(ledger, folder, now=T0)
    # Three entries after the ledger's first (its genesis); no temporary file left behind.
    assert files(folder) == ["checkpoint-20261201T100000Z-4.json"]
    checkpoint = json.loads(path.read_text())
    assert checkpoint["sequence"] == 4 and checkpoint["signature"]
    assert verify_against_checkpoint(ledger, checkpoint).ok


def test_a_second_checkpoint_in_the_same_second_never_overwrites_the_first(db: Database, folder: Path) -> None:
    ledger = Ledger(db, KEY)
    fill(ledger, 1)
    first = write_checkpoint_file(ledger, folder, now=T0)
    kept = first.read_bytes()
    fill(ledger, 1)
    second = write_checkpoint_file(ledger, folder, now=T0)
    (folder / "checkpoint-20261201T100000Z-4.json").write_text("someone else's")
    third = publish({"sequence": 4}, folder, "checkpoint-20261201T100000Z-4.json")
    assert [first.name, second.name, third.name] == [
        "checkpoint-20261201T100000Z-2.json",
        "checkpoint-20261201T100000Z-3.json",
        "checkpoint-20261201T100000Z-4-1.json",
    ]
    assert first.read_bytes() == kept
    assert (folder / "checkpoint-20261201T100000Z-4.json").read_text() == "someone else's"


def test_no_checkpoint_of_a_broken_ledger(db: Database, folder: Path) -> None:
    ledger = Ledger(db, KEY)
    fill(ledger, 3)
    with db.session() as session:
        session.execute(text("UPDATE ledger_entries SET payload = REPLACE(payload, '2', '7') WHERE sequence = 2"))
    with pytest.raises(LedgerBroken, match="ledger BROKEN, no checkpoint written: entry 2"):
        write_checkpoint_file(ledger, folder)
    assert write_periodic_checkpoint(ledger, folder) is None
    assert files(folder) == []


def test_the_periodic_job_writes_a_checkpoint_once_a_period_across_processes(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    Database(database_url).upgrade()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    configured = Settings(**{**settings.__dict__, "checkpoint_dir": str(folder), "checkpoint_minutes": 60.0})
    services = build_services(configured)
    try:
        fill(services.ledger, 2)
        jobs = [job for job in periodic_jobs(services) if job.name == "write_checkpoint"]
        assert [job.period.total_seconds() for job in jobs] == [3600.0]
        first, second = Scheduler(services.db, services.clock, jobs), Scheduler(services.db, services.clock, jobs)
        assert first.run_due() == ["write_checkpoint"]
        assert second.run_due() == []  # another process, within the hour: already written
        (written,) = folder.iterdir()
        assert written.name.startswith("checkpoint-") and written.name.endswith(
            "-2.json"
        )  # unsigned: no key entry first
        assert verify_against_checkpoint(services.ledger, json.loads(written.read_text())).ok
        assert write_periodic_checkpoint(services.ledger, folder) is not None
        assert len(files(folder)) == 2
    finally:
        services.db.dispose()
    without = build_services(settings)
    try:
        assert "write_checkpoint" not in [job.name for job in periodic_jobs(without)]
    finally:
        without.db.dispose()


def test_directory_problems_are_named(folder: Path) -> None:
    assert directory_problem(folder) is None
    assert files(folder) == []  # the probe is removed
    missing = folder / "nowhere"
    assert directory_problem(missing) == f"COUNTERSIGN_CHECKPOINT_DIR={missing}: the directory does not exist"
    a_file = folder / "a-file"
    a_file.write_text("")
    assert directory_problem(a_file) == f"COUNTERSIGN_CHECKPOINT_DIR={a_file}: not a directory"
    # /proc takes no new files, whoever asks (root included).
    assert str(directory_problem("/proc")).startswith("COUNTERSIGN_CHECKPOINT_DIR=/proc: cannot write there (")


def cli(database_url: str, *args: str, key_file: Path, **env: str) -> object:
    environment = {"DATABASE_URL": database_url, "COUNTERSIGN_SIGNING_KEY_PATH": str(key_file), **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return ledger_helpers.key_file(tmp_path, KEY)


def test_cli_checkpoint_out_writes_a_new_file_into_the_directory(
    db: Database, database_url: str, tmp_path: Path, key_file: Path
) -> None:
    fill(Ledger(db, KEY), 2)
    folder = tmp_path / "out"
    folder.mkdir()
    result = cli(database_url, "checkpoint", "--out", str(folder), key_file=key_file)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (written,) = folder.iterdir()
    assert result.output == f"checkpoint written to {written}\n"  # type: ignore[attr-defined]
    assert json.loads(written.read_text())["signature"]
    missing = cli(database_url, "checkpoint", "--out", str(tmp_path / "nowhere"), key_file=key_file)
    assert missing.exit_code == 1  # type: ignore[attr-defined]
    assert "the directory does not exist" in missing.output  # type: ignore[attr-defined]
    with db.session() as session:
        session.execute(text("UPDATE ledger_entries SET payload = REPLACE(payload, '2', '7') WHERE sequence = 2"))
    broken = cli(database_url, "checkpoint", "--out", str(folder), key_file=key_file)
    assert broken.exit_code == 1  # type: ignore[attr-defined]
    assert "ledger BROKEN, no checkpoint written" in broken.output  # type: ignore[attr-defined]
    assert len(list(folder.iterdir())) == 1


def test_check_settings_names_a_checkpoint_directory_it_cannot_write(
    github: object, jira: object, app_keys: tuple[str, str], database_url: str, tmp_path: Path
) -> None:
    from test_check_settings import check, environment, lines

    Database(database_url).upgrade()
    env = environment(github, jira, app_keys, database_url, COUNTERSIGN_CHECKPOINT_DIR="/proc")  # type: ignore[arg-type]
    result = check(env)
    assert result.exit_code == 1
    assert lines(result)[0].startswith("problem: COUNTERSIGN_CHECKPOINT_DIR=/proc: cannot write there (")
    good = check(environment(github, jira, app_keys, database_url, COUNTERSIGN_CHECKPOINT_DIR=str(tmp_path)))  # type: ignore[arg-type]
    assert good.exit_code == 0, good.output
    assert lines(good)[0] == f"ok: checkpoints are written into {tmp_path}"
