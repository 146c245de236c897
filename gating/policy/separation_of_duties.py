"""Nobody approves their own code: matching Jira approvers to GitHub people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gating.policy.facts import GitHubPerson
from jira_client.models import JiraUser

# GitHub itself commits merges and web edits; it is nobody's identity.
_GITHUB_COMMITTERS = {"web-flow", "github"}
_GITHUB_EMAILS = {"noreply@github.com"}


def is_github_itself(person: GitHubPerson) -> bool:
    return (person.login or "").lower() in _GITHUB_COMMITTERS or (person.email or "").lower() in _GITHUB_EMAILS


def same_person(
    person: GitHubPerson,
    approver: JiraUser,
    identities: Mapping[str, str],
    known_emails: Mapping[str, frozenset[str]] = {},
) -> bool | None:
    """True or False when we can tell; None when no mapping or e-mail settles it.

    `identities` maps GitHub logins to a Jira accountId, username or e-mail (the config).
    `known_emails` maps logins to e-mails GitHub has verified for them (from commit authors).
    """
    approver_ids = {i.casefold() for i in approver.identifiers()}
    by_login = {login.casefold(): value.casefold() for login, value in identities.items()}
    login = (person.login or "").casefold()
    if login and login in by_login:
        return by_login[login] in approver_ids
    # The approver is mapped to some login: they are that person and nobody else.
    approver_logins = {mapped for mapped, value in by_login.items() if value in approver_ids}
    if approver_logins and login:
        return login in approver_logins
    emails = {e.casefold() for e in known_emails.get(person.login or "", frozenset())}
    if person.email:
        emails.add(person.email.casefold())
    if emails and approver.email:
        return approver.email.casefold() in emails
    return None


def check_separation(
    approver: JiraUser,
    people: Iterable[tuple[str, GitHubPerson]],
    identities: Mapping[str, str],
    known_emails: Mapping[str, frozenset[str]],
) -> tuple[list[str], list[str]]:
    """Conflicts and unresolved identities for one approver against (role, person) pairs.

    Each comes back once, naming every role the person holds, so the reader sees one line per problem.
    """
    conflict_roles: list[str] = []
    unresolved: dict[str, list[str]] = {}
    for role, person in people:
        if is_github_itself(person):
            continue
        verdict = same_person(person, approver, identities, known_emails)
        if verdict is True and role not in conflict_roles:
            conflict_roles.append(role)
        elif verdict is None:
            roles = unresolved.setdefault(person.login or person.label(), [])
            if role not in roles:
                roles.append(role)
    conflicts = [f"{approver.label()} approved it but is also {_join(conflict_roles)}"] if conflict_roles else []
    ident = approver.account_id or approver.name or approver.email or approver.label()
    problems = []
    for who, roles in unresolved.items():
        if "@" in who or " " in who:
            problems.append(
                f"cannot tell whether Jira user {approver.label()} ({ident}) is {who} ({_join(roles)}), "
                "who has no GitHub account; map the approver under `identities`"
            )
        else:
            problems.append(
                f"cannot tell whether Jira user {approver.label()} ({ident}) is GitHub user {who} ({_join(roles)}); "
                f"add `{who}: <Jira accountId, username or e-mail>` under `identities` in .github/countersign.yml"
            )
    return conflicts, problems


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    if len(items) > 4:
        items = [*items[:3], f"{len(items) - 3} more"]
    return ", ".join(items[:-1]) + " and " + items[-1]
