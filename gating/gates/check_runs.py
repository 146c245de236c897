"""Publish the merge gate's verdict: one check run per head SHA and name, in progress, then completed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from gating.db import Database
from gating.gates.render import render_check_run
from gating.github_api import Repo, writes
from gating.models import CheckRunRecord
from gating.policy.verdict import Verdict


def _record(repository: str, head_sha: str, name: str) -> Select[CheckRunRecord]:
    return select(CheckRunRecord).where(
        CheckRunRecord.repository == repository,
        CheckRunRecord.head_sha == head_sha,
        CheckRunRecord.check_name == name,
    )


def start_check_run(db: Database, repo: Repo, head_sha: str, name: str, number: int | None, new_run: bool) -> int:
    """Create the check run in progress, or put the existing one for this head back in progress.

    `new_run`: someone pressed Re-run, and GitHub expects a new check run.
    """
    with db.session() as session:
        record = session.scalar(_record(repo.full_name, head_sha, name))
        existing = int(record.check_run_id) if record else None
    if existing and not new_run:
        writes.update_check_run(repo, existing, {"status": "in_progress"})
        return existing
    run_id = writes.create_check_run(repo, name, head_sha)
    with db.session() as session:
        record = session.scalar(_record(repo.full_name, head_sha, name))
        if record:
            record.check_run_id = run_id
        else:
            session.add(
                CheckRunRecord(
                    repository=repo.full_name,
                    head_sha=head_sha,
                    check_name=name,
                    check_run_id=run_id,
                    pull_number=number,
                )
            )
    return run_id


def complete_check_run(db: Database, repo: Repo, head_sha: str, name: str, run_id: int, verdict: Verdict) -> None:
    output = render_check_run(verdict)
    fields: dict[str, Any] = {
        "status": "completed",
        "conclusion": output.conclusion,
        "completed_at": verdict.evaluated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "output": {"title": output.title, "summary": output.summary},
    }
    if output.text:
        fields["output"]["text"] = output.text
    writes.update_check_run(repo, run_id, fields)
    with db.session() as session:
        record = session.scalar(_record(repo.full_name, head_sha, name))
        if record:
            record.outcome = verdict.outcome.label
            record.title = output.title
            record.evaluated_at = verdict.evaluated_at
