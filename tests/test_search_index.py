"""The search index's life beside the ledger: migration 0013 indexes the decisions recorded before it (a batch at
a time), a retention purge deletes the index rows of what it purges, and odd evidence never breaks an append."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select

from gating.app import create_app
from gating.console.auth import create_token
from gating.console.index import backfill, index_entry
from gating.console.queries import DeploymentQuery, search_deployments
from gating.console.rendering import render_dashboard
from gating.console.scope import EVERYTHING
from gating.db import Database, _alembic_config
from gating.ledger import Ledger, make_checkpoint
from gating.ledger.purges import Retention
from gating.ledger.retention import plan_purge, purge
from gating.ledger.verification import ledger_state
from gating.models import (
    LEDGER_DERIVED,
    SearchCommit,
    SearchDeployment,
    SearchPerson,
    SearchRepository,
    SearchTicket,
    SearchVersion,
)
from gating.settings import Settings

T0 = datetime(2020, 3, 1, tzinfo=UTC)


def sha(n: int, salt: str = "deployed") -> str:
    return hashlib.sha1(f"{salt}{n}".encode()).hexdigest()


def evidence(n: int, *, ref: str = "refs/tags/v1.0.0") -> dict[str, Any]:
    """A deployment decision's evidence in the shape `build_evidence` writes, with two commits and one ticket."""
    person = {"login": "alice", "name": "Alice Author", "email": "alice@example.com"}
    return {
        "repository": "acme/web",
        "environment": "production",
        "deployment_id": 1000 + n,
        "sha": sha(n),
        "ref": ref,
        "requester": "dave",
        "commits": [
            {"sha": sha(n, "inside"), "author": person, "committer": person | {"login": "web-flow"}, "message": "x"},
            {"sha": sha(n), "author": person, "committer": person, "message": "y"},
        ],
        "tickets": [
            {
                "key": f"PAY-{n}",
                "approvers": ["Carol Approver"],
                "approval_record": {"author": {"accountId": "acc-carol", "emailAddress": "carol@example.com"}},
            }
        ],
        "decision": {"state": "approved"},
    }


def index_of(n: int) -> dict[str, Any]:
    return {
        "repository": "acme/web",
        "environment": "production",
        "deployment_id": 1000 + n,
        "sha": sha(n),
        "decision": "approved",
    }


def record(ledger: Ledger, n: int, *, indexed: bool = True) -> None:
    """Append as the deploy gate does: the entry and its index rows in one transaction."""
    with ledger.db.session() as session:
        entry = ledger.append("deployment_decision", evidence(n), index=index_of(n), session=session)
        if indexed:
            index_entry(session, entry, evidence(n))


def client(settings: Settings) -> tuple[FlaskClient, dict[str, str]]:
    # No worker: one left polling would outlive the test and claim the next test's deliveries.
    app = create_app(dataclasses.replace(settings, embedded_worker=False))
    token = create_token(app.extensions["countersign"].db, "auditor", datetime.now(UTC))
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def table_rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.session() as session:
        return {
            table.__tablename__: sorted(tuple(row) for row in session.execute(select(*table.__table__.columns)))
            for table in LEDGER_DERIVED
        }


def test_the_migration_indexes_the_decisions_recorded_before_it(settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.engine.begin() as connection:  # the schema as it was before the index
        config = _alembic_config(settings.database_url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
    ledger = Ledger(db, clock=lambda: T0)
    for n in range(1, 4):
        ledger.append(
            "deployment_decision", evidence(n, ref="main" if n == 3 else "refs/tags/v1.0.0"), index=index_of(n)
        )
    ledger.append("legal_hold", {"repository": "acme/web"}, index={})  # not a deployment: not indexed
    db.upgrade()

    web, auth = client(settings)
    found = web.get("/api/v1/deployments", query_string={"sha": sha(2, "inside")[:9]}, headers=auth).get_json()
    assert [d["deployment_id"] for d in found["deployments"]] == [1002] and found["total"] == 1
    assert found["deployments"][0]["matched_commits"] == [sha(2, "inside")]
    assert found["deployments"][0]["tickets"] == ["PAY-2"] and found["deployments"][0]["commit_count"] == 2

    def ids(**params: str) -> list[int]:
        body = web.get("/api/v1/deployments", query_string=params, headers=auth).get_json()
        return [d["deployment_id"] for d in body["deployments"]]

    assert ids() == [1003, 1002, 1001]
    assert ids(ticket="pay-3") == [1003]
    assert ids(approver="acc-carol") == [1003, 1002, 1001]
    assert ids(requester="dave", version="v1.0.0") == [1002, 1001]
    assert ids(version="main") == [1003]
    assert ids(author="web-flow") == [1003, 1002, 1001]  # a committer too
    assert ids(since="2020-03-01", until="2020-03-01") == [1003, 1002, 1001]

    # Run again a batch at a time on an emptied index, it writes exactly the same rows.
    written = table_rows(db)
    with db.session() as session:
        for table in LEDGER_DERIVED:
            session.execute(delete(table))
    with db.engine.begin() as connection:
        assert backfill(connection, batch=2) == 3
        assert backfill(connection, batch=2) == 0  # what is indexed is not indexed twice
    assert table_rows(db) == written
    with db.session() as session:  # the names a viewer's scope is matched against
        assert list(session.scalars(select(SearchRepository.name))) == ["acme/web"]
    (entry,) = search_deployments(db, DeploymentQuery(ticket="PAY-2"), EVERYTHING)  # the entries themselves
    assert entry.deployment_id == 1002 and entry.kind == "deployment_decision"
    assert len(written["search_commits"]) == 6 and len(written["search_versions"]) == 5
    db.dispose()


def test_a_purge_deletes_the_index_rows_of_the_entries_it_purges(settings: Settings) -> None:
    db = Database(settings.database_url)
    db.upgrade()
    at = [T0]
    ledger = Ledger(db, clock=lambda: at[0])
    for n in range(1, 6):
        at[0] = T0 + timedelta(days=400 * (n > 3), hours=n)
        record(ledger, n)
    plan = plan_purge(ledger, Retention.parse("1y"), now=T0 + timedelta(days=500))
    assert (plan.first, plan.last) == (1, 3)
    purge(ledger, plan)

    with db.session() as session:
        for table in LEDGER_DERIVED:
            sequences = set(session.scalars(select(table.sequence)))
            assert sequences == {4, 5}, table.__tablename__
    web, auth = client(settings)
    body = web.get("/api/v1/deployments", query_string={"approver": "carol@example.com"}, headers=auth).get_json()
    assert [d["deployment_id"] for d in body["deployments"]] == [1005, 1004] and body["total"] == 2
    assert web.get("/api/v1/deployments", query_string={"ticket": "PAY-1"}, headers=auth).get_json()["total"] == 0
    db.dispose()


def test_evidence_of_any_shape_is_indexed_without_failing_the_append(settings: Settings) -> None:
    """Whatever GitHub and Jira sent, indexing never makes the decision's transaction fail."""
    db = Database(settings.database_url)
    db.upgrade()
    ledger = Ledger(db, clock=lambda: T0)
    odd: dict[str, Any] = {
        "ref": "x" * 1000,
        "requester": None,
        "commits": [
            {"sha": "not hex"},
            "nonsense",
            {"sha": "ABCDEF0" + "1" * 33, "author": "Ghost", "committer": {"login": "half\ud83d", "name": "nul\x00"}},
        ],
        "tickets": [{"key": "OPS-" + "9" * 300, "approvers": [], "approval_record": {"approvers": "x"}}, 7],
    }
    with db.session() as session:
        entry = ledger.append("deployment_decision", odd, index={"repository": "acme/web"}, session=session)
        index_entry(session, entry, odd)
        error = ledger.append("deployment_decision", {"error": "Jira down"}, index={}, session=session)
        index_entry(session, error)  # evidence read back from the entry itself
        other = ledger.append("legal_hold", {}, index={}, session=session)
        index_entry(session, other)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(SearchDeployment)) == 2
        assert list(session.scalars(select(SearchCommit.sha))) == ["abcdef0" + "1" * 33]
        (key,) = session.scalars(select(SearchTicket.ticket_key))
        assert len(key) == 100
        # Half an emoji and a NUL, as GitHub may send them, stored as the database can hold them.
        assert sorted(session.scalars(select(SearchPerson.identity))) == ["ghost", "half?", "nul\ufffd"]
        versions = list(session.scalars(select(SearchVersion.version)))
        assert [len(v) for v in versions] == [300]
    db.dispose()


def test_the_ledger_state_names_the_newest_checkpoint_written(settings: Settings, tmp_path: Any) -> None:
    db = Database(settings.database_url)
    db.upgrade()
    ledger = Ledger(db, clock=lambda: T0)
    assert ledger_state(ledger, checkpoint_dir=tmp_path)["last_checkpoint"] is None  # none written yet
    record(ledger, 1)
    (tmp_path / "old.json").write_text(json.dumps(make_checkpoint(ledger, now=T0)))
    record(ledger, 2)
    newest = tmp_path / "new.json"
    newest.write_text(json.dumps(make_checkpoint(ledger, now=T0 + timedelta(hours=1))))
    (tmp_path / "notes.json").write_text("not a checkpoint")
    os.utime(newest, (T0.timestamp() + 10**9, T0.timestamp() + 10**9))
    state = ledger_state(ledger, checkpoint_dir=tmp_path)
    assert state["entries"] == 2 and state["head"]["sequence"] == 2
    assert state["last_checkpoint"] == {
        "sequence": 2,
        "head_hash": ledger.head()[1],
        "created_at": "2020-03-01T01:00:00Z",
        "signed": False,
        "file": "new.json",
    }
    html = render_dashboard([], [], {}, ledger_state=state)
    assert 'Last checkpoint</dt>\n  <dd>entry 2, 2020-03-01 01:00:00 UTC, <span class="warn">unsigned</span>' in html
    db.dispose()


def _in(repository: str, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decision `n`'s evidence and index columns, recorded for `repository`."""
    return evidence(n) | {"repository": repository}, index_of(n) | {"repository": repository}


def _migration_0016() -> Any:
    path = os.path.join(os.path.dirname(__file__), "..", "gating", "migrations", "versions", "0016_index_repository.py")
    spec = importlib.util.spec_from_file_location("migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHILDREN = (SearchCommit, SearchTicket, SearchPerson, SearchVersion)


def test_migration_0016_gives_the_rows_already_indexed_their_decisions_repository(settings: Settings) -> None:
    db = Database(settings.database_url)
    with db.engine.begin() as connection:  # the schema as it was before the child rows had a repository
        config = _alembic_config(settings.database_url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
    ledger = Ledger(db, clock=lambda: T0)
    repositories = {1: "Acme/Web", 2: "other/api", 3: "acme/web", 4: "Other/API", 5: "acme/web"}
    for n, repository in repositories.items():
        data, index = _in(repository, n)
        ledger.append("deployment_decision", data, index=index)
    with db.engine.begin() as connection:
        config = _alembic_config(settings.database_url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0015")  # 0013 indexes them, without the column 0016 adds
    db.upgrade()

    def repositories_of(table: Any) -> dict[int, set[str | None]]:
        found: dict[int, set[str | None]] = {}
        with db.session() as session:
            for sequence, repository in session.execute(select(table.sequence, table.repository)):
                found.setdefault(sequence, set()).add(repository)
        return found

    with db.session() as session:
        expected = {
            sequence: {repository.lower()}
            for sequence, repository in session.execute(select(SearchDeployment.sequence, SearchDeployment.repository))
        }
    assert len(expected) == 5
    for table in CHILDREN:
        found = repositories_of(table)
        assert found == {s: expected[s] for s in found} and set(found) == set(expected), table.__tablename__

    # A batch of sequences at a time fills every row, however the batches fall.
    with db.engine.begin() as connection:
        for table in CHILDREN:
            connection.execute(table.__table__.update().values(repository=None))
            _migration_0016().fill(connection, table.__tablename__, batch=2)
    for table in CHILDREN:
        assert repositories_of(table) == expected, table.__tablename__

    # What the migration filled is what appending writes.
    written = table_rows(db)
    with db.session() as session:
        for table in LEDGER_DERIVED:
            session.execute(delete(table))
    with db.engine.begin() as connection:
        assert backfill(connection) == 5
    assert table_rows(db) == written
    db.dispose()


def test_a_scoped_search_by_a_child_filter_never_returns_another_repositorys_decision(settings: Settings) -> None:
    db = Database(settings.database_url)
    db.upgrade()
    ledger = Ledger(db, clock=lambda: T0)
    repositories = {1: "acme/web", 2: "other/api", 3: "Acme/Web", 4: "acmex/web", 5: "other/api", 6: "acme/web"}
    for n, repository in repositories.items():
        data, index = _in(repository, n)
        with db.session() as session:
            entry = ledger.append("deployment_decision", data, index=index, session=session)
            index_entry(session, entry, data)
    with db.session() as session:  # a child row left without its repository is outside every scope
        session.execute(SearchPerson.__table__.update().where(SearchPerson.sequence == 6).values(repository=None))
    app = create_app(dataclasses.replace(settings, embedded_worker=False))
    token = create_token(app.extensions["countersign"].db, "web team", datetime.now(UTC), repositories="acme/*")
    web, auth = app.test_client(), {"Authorization": f"Bearer {token}"}

    def found(**params: str) -> tuple[list[int], int]:
        body = web.get("/api/v1/deployments", query_string=params, headers=auth).get_json()
        assert {d["repository"].lower().split("/")[0] for d in body["deployments"]} <= {"acme"}, params
        return [d["deployment_id"] for d in body["deployments"]], body["total"]

    everyone = ([1006, 1003, 1001], 3)
    assert found() == everyone
    assert found(ticket="PAY-2") == ([], 0) and found(ticket="PAY-3") == ([1003], 1)
    assert found(sha=sha(5)[:10]) == ([], 0) and found(sha=sha(1, "inside")) == ([1001], 1)
    assert found(version="v1.0.0") == everyone
    assert found(requester="dave") == ([1003, 1001], 2)  # 1006's people rows carry no repository
    assert found(approver="acc-carol") == ([1003, 1001], 2)
    assert found(author="web-flow") == ([1003, 1001], 2)
    assert found(approver="acc-carol", version="v1.0.0") == ([1003, 1001], 2)
    assert found(approver="acc-carol", repo="other/api") == ([], 0)
    assert found(ticket="PAY-1", environment="production") == ([1001], 1)
    db.dispose()
