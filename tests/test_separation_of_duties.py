"""Whether a Jira approver is one of the change's people: same, different, or cannot tell — from literal identities.

Two identities are the same person when any identifier of the same kind matches; they are different only
when both carry one of the same kind and it differs, or `identities` says so by accountId or username.
Everything else is "cannot tell", which fails closed and names the mapping to add.
"""

from __future__ import annotations

import pytest

from gating.policy.facts import GitHubPerson
from gating.policy.separation_of_duties import check_separation, identity_warnings, same_person
from jira_client.models import JiraUser

# GitHub's side: the PR author is a login; a commit's people carry the e-mail the commit claims.
PR_AUTHOR = GitHubPerson(login="alice")
COMMITTER = GitHubPerson(login="alice", name="Alice Author", email="alice@example.com")
NOREPLY = GitHubPerson(login="alice", name="Alice Author", email="1234+alice@users.noreply.github.com")
OLD_NOREPLY = GitHubPerson(login="alice", name="Alice Author", email="alice@users.noreply.github.com")
NO_ACCOUNT = GitHubPerson(login=None, name="Alice Author", email="alice@laptop.local")  # linked to no GitHub user

# Jira's side.
CLOUD_HIDDEN = JiraUser(account_id="5b10ac8d82e05b22cc7d4ef5", display_name="Alice Author")  # e-mail hidden
CLOUD_SHOWN = JiraUser(account_id="5b10ac8d82e05b22cc7d4ef5", display_name="Alice Author", email="alice@example.com")
CLOUD_BOB = JiraUser(account_id="acc-bob", display_name="Bob Builder", email="bob@example.com")
CLOUD_BOB_HIDDEN = JiraUser(account_id="acc-bob", display_name="Bob Builder")
DC_ALICE = JiraUser(name="alice", key="JIRAUSER10000", email="alice@corp.example", display_name="Alice Author")
DC_NO_EMAIL = JiraUser(name="alice", key="JIRAUSER10000", display_name="Alice Author")
AUTOMATION = JiraUser(display_name="Automation for Jira")  # no account at all

EMAIL_MAPPING = {"alice": "alice@example.com"}  # PRODUCT.md's own example


@pytest.mark.parametrize(
    ("person", "approver", "identities", "known", "expected"),
    [
        # Cloud hides the approver's e-mail: the e-mail mapping cannot be compared, nothing else can.
        (PR_AUTHOR, CLOUD_HIDDEN, EMAIL_MAPPING, {}, None),
        (COMMITTER, CLOUD_HIDDEN, EMAIL_MAPPING, {}, None),
        (PR_AUTHOR, CLOUD_SHOWN, EMAIL_MAPPING, {}, True),
        (PR_AUTHOR, CLOUD_BOB, EMAIL_MAPPING, {}, False),
        # Mapped by accountId: settles it either way, e-mails or not.
        (PR_AUTHOR, CLOUD_HIDDEN, {"alice": "5b10ac8d82e05b22cc7d4ef5"}, {}, True),
        (PR_AUTHOR, CLOUD_BOB_HIDDEN, {"alice": "5b10ac8d82e05b22cc7d4ef5"}, {}, False),
        # The approver is mapped to another login: they are that person, not this one.
        (PR_AUTHOR, CLOUD_BOB_HIDDEN, {"bob": "acc-bob"}, {}, False),
        (PR_AUTHOR, CLOUD_BOB_HIDDEN, {"bob": "bob@example.com"}, {}, None),  # an e-mail mapping proves no difference
        # GitHub noreply addresses say nothing about a corporate address.
        (NOREPLY, DC_ALICE, {}, {}, None),
        (OLD_NOREPLY, DC_ALICE, {}, {}, None),
        (PR_AUTHOR, DC_ALICE, {}, {"alice": frozenset({"1234+alice@users.noreply.github.com"})}, None),
        (NOREPLY, JiraUser(account_id="x", email="1234+Alice@users.noreply.github.com"), {}, {}, True),
        # E-mails compare case-insensitively, in the mapping, on commits and in Jira.
        (PR_AUTHOR, CLOUD_SHOWN, {"Alice": "Alice@Example.COM"}, {}, True),
        (GitHubPerson("alice", email="ALICE@example.com"), CLOUD_SHOWN, {}, {}, True),
        (PR_AUTHOR, CLOUD_SHOWN, {}, {"ALICE": frozenset({"Alice@Example.com"})}, True),
        (PR_AUTHOR, CLOUD_BOB, {}, {"alice": frozenset({"alice@example.com"})}, False),
        # A mapping to someone else's accountId never outweighs an e-mail that matches.
        (COMMITTER, CLOUD_SHOWN, {"alice": "acc-bob"}, {}, True),
        (PR_AUTHOR, CLOUD_SHOWN, {"alice": "acc-bob"}, {"alice": frozenset({"alice@example.com"})}, True),
        # Data Center: a username or key mapping compares; an e-mail mapping cannot when Jira shows no e-mail.
        (PR_AUTHOR, DC_NO_EMAIL, EMAIL_MAPPING, {}, None),
        (PR_AUTHOR, DC_NO_EMAIL, {"alice": "alice"}, {}, True),
        (PR_AUTHOR, DC_NO_EMAIL, {"alice": "JIRAUSER10000"}, {}, True),
        (PR_AUTHOR, DC_NO_EMAIL, {"alice": "alice2"}, {}, False),
        # A GitHub login that happens to equal a Jira username is not the same kind of identifier.
        (PR_AUTHOR, DC_NO_EMAIL, {}, {}, None),
        # A commit e-mail no GitHub account verified: it may show sameness, never a difference.
        (NO_ACCOUNT, JiraUser(account_id="x", email="alice@laptop.local"), {}, {}, True),
        (NO_ACCOUNT, CLOUD_BOB, {}, {}, None),
        (NO_ACCOUNT, CLOUD_BOB_HIDDEN, {"bob": "acc-bob"}, {}, None),
        # An approver with no identifier at all (automation) cannot be told from anyone.
        (PR_AUTHOR, AUTOMATION, {"alice": "5b10ac8d82e05b22cc7d4ef5"}, {}, None),
        (COMMITTER, AUTOMATION, EMAIL_MAPPING, {}, None),
    ],
)
def test_same_person(
    person: GitHubPerson,
    approver: JiraUser,
    identities: dict[str, str],
    known: dict[str, frozenset[str]],
    expected: bool | None,
) -> None:
    assert same_person(person, approver, identities, known) is expected


def test_a_hidden_cloud_email_names_the_accountid_to_map() -> None:
    conflicts, unresolved = check_separation(
        CLOUD_HIDDEN, [("the PR author", PR_AUTHOR), ("the author of 1234567", COMMITTER)], EMAIL_MAPPING, {}
    )
    assert conflicts == []
    assert unresolved == [
        "cannot tell whether Jira user Alice Author (accountId 5b10ac8d82e05b22cc7d4ef5) is GitHub user alice "
        "(the PR author and the author of 1234567): Jira does not show this user's e-mail; add alice's Jira "
        "accountId under `identities` in .github/countersign.yml (`alice: 5b10ac8d82e05b22cc7d4ef5` if that is them)"
    ]


def test_a_noreply_email_on_data_center_names_the_username_to_map() -> None:
    _, unresolved = check_separation(DC_ALICE, [("the author of 1234567", NOREPLY)], {}, {})
    assert unresolved == [
        "cannot tell whether Jira user Alice Author (username alice) is GitHub user alice (the author of 1234567): "
        "alice's commits show only a GitHub noreply e-mail, which says nothing about their Jira account; add "
        "alice's Jira username under `identities` in .github/countersign.yml (`alice: alice` if that is them)"
    ]


def test_a_login_without_any_email_and_a_commit_email_nobody_verified() -> None:
    _, unresolved = check_separation(
        CLOUD_BOB, [("the deployment requester", GitHubPerson("dave")), ("the author of 1234567", NO_ACCOUNT)], {}, {}
    )
    assert unresolved == [
        "cannot tell whether Jira user Bob Builder (accountId acc-bob) is GitHub user dave (the deployment "
        "requester): GitHub shows no e-mail for dave; add dave's Jira accountId under `identities` in "
        ".github/countersign.yml (`dave: acc-bob` if that is them)",
        "cannot tell whether Jira user Bob Builder (accountId acc-bob) is alice@laptop.local (the author of "
        "1234567): no GitHub account has verified that e-mail, so it proves nothing; ask its owner to add it to "
        "their GitHub account, which links the commit to their login",
    ]


def test_an_approver_with_no_jira_account_fails_closed_once() -> None:
    _, unresolved = check_separation(
        AUTOMATION, [("the PR author", PR_AUTHOR), ("the author of 1234567", COMMITTER)], EMAIL_MAPPING, {}
    )
    assert unresolved == [
        "Jira names no account for the approver Automation for Jira, so Countersign cannot tell them apart from "
        "the PR author and the author of 1234567; a person must approve it"
    ]


def test_the_same_person_in_several_roles_is_one_conflict() -> None:
    conflicts, unresolved = check_separation(
        CLOUD_SHOWN, [("the PR author", PR_AUTHOR), ("the committer of 1234567", COMMITTER)], EMAIL_MAPPING, {}
    )
    assert conflicts == ["Alice Author approved it but is also the PR author and the committer of 1234567"]
    assert unresolved == []


def test_email_mappings_are_warned_about_on_jira_cloud_only() -> None:
    identities = {"alice": "alice@example.com", "bob": "acc-bob", "carol": "Carol@Example.com"}
    assert identity_warnings(identities, jira_cloud=True) == (
        "`identities` maps alice and carol to e-mail addresses, but Jira Cloud hides e-mail addresses by default, "
        "so Countersign often cannot match them: map each login to its Jira accountId instead "
        "(`alice: <accountId>`; it ends the address of the user's Jira profile page)",
    )
    assert identity_warnings(identities, jira_cloud=False) == ()
    assert identity_warnings(identities, jira_cloud=None) == ()
    assert identity_warnings({"bob": "acc-bob"}, jira_cloud=True) == ()


def test_a_commit_github_links_to_no_account_and_no_email_names_what_the_commit_needs() -> None:
    anonymous = GitHubPerson(login=None, name="Alice Author", email=None)
    _, unresolved = check_separation(CLOUD_BOB, [("the author of 1234567", anonymous)], {}, {})
    assert unresolved == [
        "cannot tell whether Jira user Bob Builder (accountId acc-bob) is Alice Author (the author of 1234567), "
        "whom GitHub links to no account and no e-mail; the commit needs an author e-mail that a GitHub account "
        "has verified"
    ]


def test_a_role_held_twice_is_named_once() -> None:
    # Two commits of a long release can share their first seven hex digits, and so the role that names them.
    _, unresolved = check_separation(
        CLOUD_BOB, [("the author of 1234567", NO_ACCOUNT), ("the author of 1234567", NO_ACCOUNT)], {}, {}
    )
    assert unresolved == [
        "cannot tell whether Jira user Bob Builder (accountId acc-bob) is alice@laptop.local (the author of "
        "1234567): no GitHub account has verified that e-mail, so it proves nothing; ask its owner to add it to "
        "their GitHub account, which links the commit to their login"
    ]


@pytest.mark.parametrize(
    ("approver", "named", "why"),
    [
        (
            JiraUser(key="JIRAUSER10000", display_name="Alice Author"),
            "key JIRAUSER10000",
            "Jira does not show this user's e-mail",
        ),
        (
            JiraUser(email="alice@corp.example", display_name="Alice Author"),
            "e-mail alice@corp.example",
            "GitHub shows no e-mail for alice",
        ),
    ],
)
def test_the_mapping_to_add_uses_the_strongest_identifier_jira_shows(approver: JiraUser, named: str, why: str) -> None:
    _, unresolved = check_separation(approver, [("the PR author", PR_AUTHOR)], {}, {})
    kind, value = named.split(" ")
    assert unresolved == [
        f"cannot tell whether Jira user Alice Author ({named}) is GitHub user alice (the PR author): {why}; "
        f"add alice's Jira {kind} under `identities` in .github/countersign.yml (`alice: {value}` if that is them)"
    ]


def test_a_person_in_many_roles_is_named_in_the_first_three_and_a_count() -> None:
    roles = [(f"the author of {n}{n}{n}{n}{n}{n}{n}", COMMITTER) for n in range(1, 6)]
    conflicts, _ = check_separation(CLOUD_SHOWN, roles, {}, {})
    assert conflicts == [
        "Alice Author approved it but is also the author of 1111111, the author of 2222222, "
        "the author of 3333333 and 2 more"
    ]
