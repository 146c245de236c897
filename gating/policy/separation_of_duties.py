"""Nobody approves their own code: matching Jira approvers to GitHub people.

Two identities are the same person when any identifier of the same kind matches: a Jira account
(accountId, username or key) or an e-mail, compared case-insensitively. They are known to be
different only when both carry an identifier of the same kind and it differs, or `identities` says
so by account. Anything else is "cannot tell", which fails closed and names the mapping to add.

What counts as an identifier, and why:

- Jira Cloud leaves `emailAddress` out for users who hide it (the default), and Data Center users
  may have none: a missing e-mail is unknown, never different.
- GitHub noreply addresses (`1234+alice@users.noreply.github.com`) say nothing about anyone's
  corporate address: they may match themselves, but never prove a difference.
- A commit's e-mail is whatever its author typed. It counts for a login only because GitHub
  attributed the commit to that login (so the login owns the e-mail); an e-mail GitHub linked to
  no account may show sameness (that fails closed) but never a difference.
- An approver whose account `identities` maps to another login is that login, not this person.
  An approver whose *e-mail* `identities` maps to another login is not settled that way (Data
  Center lets two accounts share an e-mail); the e-mail still counts against the approver's own.
- A GitHub login and a Jira username are different kinds: `alice` on both proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gating.policy.facts import GitHubPerson
from jira_client.models import JiraUser

# GitHub itself commits merges and web edits; it is nobody's identity.
_GITHUB_COMMITTERS = {"web-flow", "github"}
_GITHUB_EMAILS = {"noreply@github.com"}
_CONFIG = ".github/countersign.yml"


def is_github_itself(person: GitHubPerson) -> bool:
    return (person.login or "").lower() in _GITHUB_COMMITTERS or (person.email or "").lower() in _GITHUB_EMAILS


def is_noreply(email: str) -> bool:
    """GitHub's private commit addresses, `ID+login@users.noreply.github.com` or `login@users.noreply…`."""
    domain = email.rpartition("@")[2].casefold()
    return domain.startswith("users.noreply.")


def _is_email(value: str) -> bool:
    return "@" in value


@dataclass(frozen=True)
class _GitHubSide:
    """What is known of one GitHub person, each identifier casefolded."""

    login: str | None
    accounts: frozenset[str]  # Jira accounts `identities` maps the login to
    emails: frozenset[str]  # every e-mail tied to them: may show sameness
    proving_emails: frozenset[str]  # those that may also show a difference: owned by the login, not noreply


@dataclass(frozen=True)
class _JiraSide:
    accounts: frozenset[str]  # accountId, username, key
    email: str | None
    mapped_logins: frozenset[str]  # logins `identities` maps to one of the accounts

    @property
    def proving_email(self) -> str | None:
        return self.email if self.email and not is_noreply(self.email) else None


def _mapping(identities: Mapping[str, str]) -> dict[str, set[str]]:
    by_login: dict[str, set[str]] = {}
    for login, value in identities.items():
        by_login.setdefault(login.casefold(), set()).add(value.strip().casefold())
    return by_login


def _github_side(
    person: GitHubPerson, mapping: Mapping[str, set[str]], known_emails: Mapping[str, frozenset[str]]
) -> _GitHubSide:
    login = person.login.casefold() if person.login else None
    mapped = mapping.get(login, set()) if login else set()
    owned = {value for value in mapped if _is_email(value)}
    if login:
        owned |= {e.casefold() for key, found in known_emails.items() if key.casefold() == login for e in found}
        if person.email:  # GitHub attributed this commit to the login: the login owns its e-mail
            owned.add(person.email.casefold())
    claimed = {person.email.casefold()} if person.email and not login else set()
    return _GitHubSide(
        login=login,
        accounts=frozenset(value for value in mapped if not _is_email(value)),
        emails=frozenset(owned | claimed),
        proving_emails=frozenset(e for e in owned if not is_noreply(e)),
    )


def _jira_side(approver: JiraUser, mapping: Mapping[str, set[str]]) -> _JiraSide:
    accounts = frozenset(v.casefold() for v in (approver.account_id, approver.name, approver.key) if v)
    return _JiraSide(
        accounts=accounts,
        email=approver.email.casefold() if approver.email else None,
        mapped_logins=frozenset(login for login, values in mapping.items() if values & accounts),
    )


def _compare(github: _GitHubSide, jira: _JiraSide) -> bool | None:
    # Same when any identifier of one kind matches: a match outweighs any mapping that says otherwise.
    if github.accounts & jira.accounts:
        return True
    if jira.email and jira.email in github.emails:
        return True
    # Different only when both sides carry an identifier of the same kind, or the mapping says so.
    if github.accounts and jira.accounts:
        return False
    if github.login and jira.mapped_logins:
        return False  # the approver is mapped to another login (a match would have been caught above)
    if github.proving_emails and jira.proving_email:
        return False
    return None


def same_person(
    person: GitHubPerson,
    approver: JiraUser,
    identities: Mapping[str, str],
    known_emails: Mapping[str, frozenset[str]] = {},
) -> bool | None:
    """True or False when we can tell; None when no identifier of the same kind settles it.

    `identities` maps GitHub logins to a Jira accountId, username or e-mail (the config).
    `known_emails` maps logins to e-mails on commits GitHub attributed to them (so the login owns them).
    """
    mapping = _mapping(identities)
    return _compare(_github_side(person, mapping, known_emails), _jira_side(approver, mapping))


def check_separation(
    approver: JiraUser,
    people: Iterable[tuple[str, GitHubPerson]],
    identities: Mapping[str, str],
    known_emails: Mapping[str, frozenset[str]],
) -> tuple[list[str], list[str]]:
    """Conflicts and unresolved identities for one approver against (role, person) pairs.

    Each comes back once, naming every role the person holds, so the reader sees one line per problem.
    """
    mapping = _mapping(identities)
    jira = _jira_side(approver, mapping)
    conflict_roles: list[str] = []
    unresolved: dict[str, tuple[_GitHubSide, list[str]]] = {}
    for role, person in people:
        if is_github_itself(person):
            continue
        github = _github_side(person, mapping, known_emails)
        verdict = _compare(github, jira)
        if verdict is True and role not in conflict_roles:
            conflict_roles.append(role)
        elif verdict is None:
            _, roles = unresolved.setdefault(person.login or person.label(), (github, []))
            if role not in roles:
                roles.append(role)
    conflicts = [f"{approver.label()} approved it but is also {_join(conflict_roles)}"] if conflict_roles else []
    if unresolved and not jira.accounts and not jira.email:
        # Nothing to map: no mapping can name an approver Jira recorded no account for.
        roles = [role for _, found in unresolved.values() for role in found]
        return conflicts, [
            f"Jira names no account for the approver {approver.label()}, so Countersign cannot tell them apart "
            f"from {_join(list(dict.fromkeys(roles)))}; a person must approve it"
        ]
    problems = [_unresolved(approver, who, github, roles) for who, (github, roles) in unresolved.items()]
    return conflicts, problems


def _unresolved(approver: JiraUser, who: str, github: _GitHubSide, roles: list[str]) -> str:
    """Why the approver and `who` cannot be told apart, and the exact line that would settle it."""
    kind, value = _approver_identifier(approver)
    whether = f"cannot tell whether Jira user {approver.label()} ({kind} {value}) is"
    if github.login is None and github.emails:
        return (
            f"{whether} {who} ({_join(roles)}): no GitHub account has verified that e-mail, so it proves nothing; "
            "ask its owner to add it to their GitHub account, which links the commit to their login"
        )
    if github.login is None:
        return (
            f"{whether} {who} ({_join(roles)}), whom GitHub links to no account and no e-mail; the commit needs "
            "an author e-mail that a GitHub account has verified"
        )
    if not approver.email or is_noreply(approver.email):
        why = "Jira does not show this user's e-mail"
    elif github.emails and not github.proving_emails:
        why = f"{who}'s commits show only a GitHub noreply e-mail, which says nothing about their Jira account"
    else:
        why = f"GitHub shows no e-mail for {who}"
    return (
        f"{whether} GitHub user {who} ({_join(roles)}): {why}; add {who}'s Jira {kind} under `identities` in "
        f"{_CONFIG} (`{who}: {value}` if that is them)"
    )


def _approver_identifier(approver: JiraUser) -> tuple[str, str]:
    """The approver's strongest identifier, for a mapping: accountId (Cloud), username (Data Center), key, e-mail.

    Only asked about an approver Jira names by one of them: check_separation answers for the others itself.
    """
    for kind, value in (("accountId", approver.account_id), ("username", approver.name), ("key", approver.key)):
        if value:
            return kind, value
    return "e-mail", approver.email or ""


def identity_warnings(identities: Mapping[str, str], *, jira_cloud: bool | None) -> tuple[str, ...]:
    """Advice on the `identities` mapping: on Jira Cloud, e-mails are hidden by default and rarely match."""
    if not jira_cloud:
        return ()
    by_email = [login for login, value in identities.items() if _is_email(value)]
    if not by_email:
        return ()
    return (
        f"`identities` maps {_join(by_email)} to e-mail addresses, but Jira Cloud hides e-mail addresses by "
        "default, so Countersign often cannot match them: map each login to its Jira accountId instead "
        f"(`{by_email[0]}: <accountId>`; it ends the address of the user's Jira profile page)",
    )


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    if len(items) > 4:
        items = [*items[:3], f"{len(items) - 3} more"]
    return ", ".join(items[:-1]) + " and " + items[-1]
