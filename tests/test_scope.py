"""Repository scopes: the one test of "may this viewer see that repository", in Python and in SQL alike."""

from __future__ import annotations

import pytest
from flask import Flask, g
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from gating.console.scope import EVERYTHING, NOTHING, Scope, current_scope

NAMES = ["acme/web", "acme/api", "ACME/Billing", "acme/my_repo", "acme/myXrepo", "other/web", "acme-evil/web", "acme"]


@pytest.mark.parametrize(
    ("patterns", "visible"),
    [
        ("acme/*", {"acme/web", "acme/api", "ACME/Billing", "acme/my_repo", "acme/myXrepo"}),
        ("acme/web", {"acme/web"}),
        ("ACME/WEB, other/*", {"acme/web", "other/web"}),
        ("acme/my_repo", {"acme/my_repo"}),  # `_` is a letter here, not SQL's any-one-character
        ("*/web", {"acme/web", "other/web", "acme-evil/web"}),
        ("*", set(NAMES)),
        ("", set(NAMES)),
    ],
)
def test_a_scope_admits_exactly_the_matching_repositories_in_python_and_in_sql(
    patterns: str, visible: set[str]
) -> None:
    scope = Scope.of(patterns)
    assert {name for name in NAMES if scope.allows(name)} == visible
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("repository", String))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"repository": name} for name in NAMES])
        found = {
            row[0] for row in connection.execute(select(table.c.repository).where(scope.clause(table.c.repository)))
        }
    assert found == visible


def test_nothing_admits_no_repository_and_everything_every_one() -> None:
    assert not NOTHING.allows("acme/web") and NOTHING.describe() == "no repository"
    assert EVERYTHING.allows("acme/web") and EVERYTHING.everything
    assert not Scope.of("acme/*").allows(None)


def test_a_request_that_never_authenticated_sees_nothing() -> None:
    app = Flask(__name__)
    with app.test_request_context("/"):
        assert current_scope() is NOTHING
        g.scope = Scope.of("acme/*")
        assert current_scope().allows("acme/web")
