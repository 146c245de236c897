"""The policy file's edge cases: what an empty or odd file means, and the line each error points at."""

from __future__ import annotations

import pytest

from gating.policy.config import PolicyError, parse_policy


def error_of(text: str) -> tuple[int | None, str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return info.value.line, info.value.message


@pytest.mark.parametrize("text", ["# nothing configured yet\n", "---\n", "~\n", "null\n"], ids=repr)
def test_a_file_with_no_settings_is_the_default_policy(text: str) -> None:
    assert parse_policy(text) == parse_policy(None)


def test_a_file_that_is_not_a_mapping_says_what_it_must_be() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("- jira\n- projects\n")
    assert str(info.value) == ".github/countersign.yml, line 1: the file must be a mapping of settings (e.g. `jira:`)"


def test_an_organisation_file_is_named_as_the_source_of_its_own_errors() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("check_name: Gate\n", "- oops\n", org_source="acme/.github:countersign.yml")
    assert str(info.value) == (
        "acme/.github:countersign.yml, line 1: the file must be a mapping of settings (e.g. `jira:`)"
    )


def test_a_lower_case_project_key_is_named_with_the_form_a_key_takes() -> None:
    assert error_of("jira:\n  projects: [PAY, ops]\n") == (
        2,
        "`jira.projects.1` is 'ops'; a Jira project key is upper-case letters, digits or _ (e.g. PAY)",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "emergency:\n  label: emergency\n  retroactive_deadline_hours: 0\n",
            (3, "`emergency.retroactive_deadline_hours`: 0 is less than the minimum of 1"),
        ),
        ("check_name: ''\n", (1, "`check_name`: '' should be non-empty")),
        (
            "pull_requests:\n  exempt_authors: ['renovate[bot]', 'renovate[bot]']\n",
            (2, "`pull_requests.exempt_authors`: ['renovate[bot]', 'renovate[bot]'] has non-unique elements"),
        ),
        (
            "jira:\n  approved_statuses: []\n",
            (2, "`jira.approved_statuses`: [] should be non-empty"),
        ),
    ],
    ids=["minimum", "empty name", "duplicates", "no approved status"],
)
def test_other_limits_name_the_setting_the_value_and_the_limit(text: str, expected: tuple[int, str]) -> None:
    assert error_of(text) == expected


def test_a_pinned_check_without_a_name_says_what_is_expected() -> None:
    text = "environments:\n  production:\n    required_checks:\n      - build\n      - {app: github-actions}\n"
    assert error_of(text) == (
        5,
        "`environments.production.required_checks.1` is {'app': 'github-actions'}; "
        "expected a check name, or {name: NAME, app: APP-SLUG} to pin the app that posts it",
    )


def test_a_value_merged_in_from_an_anchor_points_at_the_mapping_that_merges_it() -> None:
    # The bad value is not written under `pull_requests` itself: the line that pulls it in is the one to look at.
    text = "check_name: Gate\npull_requests:\n  <<: {exempt_authors: dependabot}\n"
    assert error_of(text) == (2, "`pull_requests.exempt_authors` must be a list, not str 'dependabot'")


def test_a_duplicated_setting_points_at_its_first_occurrence() -> None:
    # YAML keeps the last of two equal keys; the first is where the reader will notice the repetition.
    text = "environments:\n  production:\n    required_checks: build\n    required_checks: ['']\n"
    assert error_of(text) == (
        3,
        "`environments.production.required_checks.0` is ''; "
        "expected a check name, or {name: NAME, app: APP-SLUG} to pin the app that posts it",
    )
