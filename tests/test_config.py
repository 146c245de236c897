"""Policy files: defaults, org defaults, and errors that say where and what is allowed."""

from __future__ import annotations

import pytest

from gating.policy.config import PolicyError, parse_policy


def test_no_file_gives_the_documented_defaults() -> None:
    policy = parse_policy(None)
    assert policy.approved_statuses == ("Approved",)
    assert policy.key_sources == ("title", "branch", "commits")
    assert policy.check_name == "Countersign"
    assert policy.exempt_authors == ("dependabot[bot]", "renovate[bot]")


def test_repository_settings_override_organisation_defaults() -> None:
    org = "jira:\n  projects: [PAY, OPS]\n  approved_statuses: [Approved, Done]\n"
    repo = "jira:\n  projects: [PAY]\ncheck_name: Release gate\n"
    policy = parse_policy(repo, org)
    assert policy.projects == ("PAY",)
    assert policy.approved_statuses == ("Approved", "Done")
    assert policy.check_name == "Release gate"


def test_unknown_key_lists_allowed_ones_with_its_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("jira:\n  projects: [PAY]\n  aproved_statuses: [Done]\n")
    assert str(info.value) == (
        ".github/countersign.yml, line 3: unknown setting `aproved_statuses` in `jira`; "
        "allowed: approval_source, approved_statuses, key_sources, projects"
    )


def test_an_unknown_key_points_at_its_own_line_not_its_parents() -> None:
    text = "jira:\n  projects: [PAY]\nenvironments:\n  production:\n    required_checks: [build]\n    timeout: 5\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.line == 6
    assert "unknown setting `timeout` in `environments.production`" in info.value.message
    # Two misspellings: the first one in the file is named first.
    with pytest.raises(PolicyError) as info:
        parse_policy("check_name: x\nchek: 1\nidentites: {}\n")
    assert info.value.line == 2
    # At the top level of the file.
    with pytest.raises(PolicyError) as info:
        parse_policy("jira:\n  projects: [PAY]\ncheckname: Gate\n")
    assert (info.value.line, info.value.message) == (
        3,
        "unknown setting `checkname` at the top level; allowed: "
        "check_name, emergency, environments, identities, jira, pull_requests",
    )


def test_bad_enum_and_type_name_the_value_and_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("check_name: x\njira:\n  approval_source: email\n")
    assert info.value.line == 3
    assert "allowed values: changelog, jsm" in info.value.message
    with pytest.raises(PolicyError) as info:
        parse_policy("pull_requests:\n  require_review: maybe\n")
    assert info.value.message == "`pull_requests.require_review` must be true or false, not str 'maybe'"


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("jira:\n  projects: [PAY\n")
    assert info.value.line is not None
    assert "not valid YAML" in info.value.message
