"""JSON shapes shared by answers and webhooks: users, repos, commits, pulls, reviews, apps, deployments, checks."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from simulators.github.state import Person, _Commit, _PullRequest, _Repo, _Review, iso, now

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

HTML = "https://github.com"
# Well-known apps other than ours, by slug: (id, owner, name).
KNOWN_APPS = {"github-actions": (15368, "github", "GitHub Actions")}
APP_PERMISSIONS = {
    "actions": "read",
    "checks": "write",
    "contents": "read",
    "deployments": "write",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "write",
}
# The app also subscribes to `deployment_protection_rule`, but GitHub's webhook description has no such member in
# the `app.events` enum of check_suite payloads, so it is left out here.
APP_EVENTS = ["check_run", "check_suite", "pull_request", "pull_request_review"]


def node_id(kind: str, ident: int | str) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


def user_json(sim: GitHubSimulator, login: str) -> dict[str, Any]:
    user_id = sim.store.user_id(login)
    users = f"{sim.api}/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": node_id("User", user_id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": users,
        "html_url": f"{HTML}/{login}",
        "followers_url": f"{users}/followers",
        "following_url": f"{users}/following{{/other_user}}",
        "gists_url": f"{users}/gists{{/gist_id}}",
        "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{users}/subscriptions",
        "organizations_url": f"{users}/orgs",
        "repos_url": f"{users}/repos",
        "events_url": f"{users}/events{{/privacy}}",
        "received_events_url": f"{users}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def repo_json(sim: GitHubSimulator, repo: _Repo) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}"
    urls = {
        "forks_url": "/forks",
        "keys_url": "/keys{/key_id}",
        "collaborators_url": "/collaborators{/collaborator}",
        "teams_url": "/teams",
        "hooks_url": "/hooks",
        "issue_events_url": "/issues/events{/number}",
        "events_url": "/events",
        "assignees_url": "/assignees{/user}",
        "branches_url": "/branches{/branch}",
        "tags_url": "/tags",
        "blobs_url": "/git/blobs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "trees_url": "/git/trees{/sha}",
        "statuses_url": "/statuses/{sha}",
        "languages_url": "/languages",
        "stargazers_url": "/stargazers",
        "contributors_url": "/contributors",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "commits_url": "/commits{/sha}",
        "git_commits_url": "/git/commits{/sha}",
        "comments_url": "/comments{/number}",
        "issue_comment_url": "/issues/comments{/number}",
        "contents_url": "/contents/{+path}",
        "compare_url": "/compare/{base}...{head}",
        "merges_url": "/merges",
        "archive_url": "/{archive_format}{/ref}",
        "downloads_url": "/downloads",
        "issues_url": "/issues{/number}",
        "pulls_url": "/pulls{/number}",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "labels_url": "/labels{/name}",
        "releases_url": "/releases{/id}",
        "deployments_url": "/deployments",
    }
    open_issues = sum(1 for pr in repo.pulls.values() if pr.state == "open")
    pushed = max((c.date for c in repo.commits.values()), default=repo.created_at)
    result: dict[str, Any] = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": user_json(sim, repo.owner),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
    }
    result.update({key: api + suffix for key, suffix in urls.items()})
    result.update(
        {
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "pushed_at": iso(pushed),
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
            "default_branch": repo.default_branch,
        }
    )
    return result


def label_json(sim: GitHubSimulator, repo: _Repo, name: str) -> dict[str, Any]:
    label_id = int(hashlib.sha1(f"{repo.full_name}:{name}".encode()).hexdigest()[:8], 16)
    return {
        "id": label_id,
        "node_id": node_id("Label", label_id),
        "url": f"{sim.api}/repos/{repo.full_name}/labels/{name}",
        "name": name,
        "color": "ededed",
        "default": False,
        "description": None,
    }


def git_person(person: Person, moment: datetime) -> dict[str, Any]:
    return {"name": person.name, "email": person.email, "date": iso(moment)}


def commit_json(sim: GitHubSimulator, repo: _Repo, commit: _Commit, *, detail: bool = False) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    result: dict[str, Any] = {
        "sha": commit.sha,
        "node_id": node_id("Commit", commit.sha[:12]),
        "commit": {
            "author": git_person(commit.author, commit.date),
            "committer": git_person(commit.committer, commit.date),
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
            "url": f"{api}/git/commits/{commit.sha}",
            "comment_count": 0,
            "verification": verification_json(commit),
        },
        "url": f"{api}/commits/{commit.sha}",
        "html_url": f"{HTML}/{repo.full_name}/commit/{commit.sha}",
        "comments_url": f"{api}/commits/{commit.sha}/comments",
        "author": user_json(sim, commit.author.login) if commit.author.login else None,
        "committer": user_json(sim, commit.committer.login) if commit.committer.login else None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{HTML}/{repo.full_name}/commit/{p}"}
            for p in commit.parents
        ],
    }
    if detail:
        result["stats"] = {"total": 0, "additions": 0, "deletions": 0}
        result["files"] = []
    return result


def pull_json(sim: GitHubSimulator, repo: _Repo, pr: _PullRequest, *, webhook: bool = False) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/pull/{pr.number}"
    head_sha = repo.head_sha(pr)
    base_sha = repo.branches[pr.base_ref]
    ahead = repo.only_in(head_sha, base_sha)
    owner_user = user_json(sim, repo.owner)
    repository = repo_json(sim, repo)

    def side(ref: str, sha: str) -> dict[str, Any]:
        return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": owner_user, "repo": repository}

    links = {
        "self": {"href": f"{api}/pulls/{pr.number}"},
        "html": {"href": html},
        "issue": {"href": f"{api}/issues/{pr.number}"},
        "comments": {"href": f"{api}/issues/{pr.number}/comments"},
        "review_comments": {"href": f"{api}/pulls/{pr.number}/comments"},
        "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
        "commits": {"href": f"{api}/pulls/{pr.number}/commits"},
        "statuses": {"href": f"{api}/statuses/{head_sha}"},
    }
    result: dict[str, Any] = {
        "url": f"{api}/pulls/{pr.number}",
        "id": pr.id,
        "node_id": node_id("PullRequest", pr.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pr.number}",
        "commits_url": f"{api}/pulls/{pr.number}/commits",
        "review_comments_url": f"{api}/pulls/{pr.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pr.number}/comments",
        "statuses_url": f"{api}/statuses/{head_sha}",
        "number": pr.number,
        "state": pr.state,
        "locked": False,
        "title": pr.title,
        "user": user_json(sim, pr.author),
        "body": pr.body or None,
        "labels": [label_json(sim, repo, name) for name in pr.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(pr.created_at),
        "updated_at": iso(pr.updated_at),
        "closed_at": iso(pr.closed_at) if pr.closed_at else None,
        "merged_at": iso(pr.merged_at) if pr.merged_at else None,
        "merge_commit_sha": pr.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": side(pr.head_ref, head_sha),
        "base": side(pr.base_ref, base_sha),
        "_links": links,
        "author_association": "OWNER" if pr.author == repo.owner else "CONTRIBUTOR",
        "auto_merge": None,
        "draft": pr.draft,
        "merged": pr.merged_at is not None,
        "mergeable": None,
        "rebaseable": None,
        "mergeable_state": "unknown",
        "merged_by": user_json(sim, pr.merged_by) if pr.merged_by else None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": len(ahead),
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    }
    if webhook:
        result.update(
            {
                "allow_auto_merge": False,
                "allow_update_branch": False,
                "delete_branch_on_merge": False,
                "merge_commit_message": "PR_TITLE",
                "merge_commit_title": "MERGE_MESSAGE",
                "squash_merge_commit_message": "COMMIT_MESSAGES",
                "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                "use_squash_pr_title_as_default": False,
            }
        )
    return result


def review_json(sim: GitHubSimulator, repo: _Repo, pr: _PullRequest, review: _Review) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}/pull/{pr.number}#pullrequestreview-{review.id}"
    return {
        "id": review.id,
        "node_id": node_id("PullRequestReview", review.id),
        "user": user_json(sim, review.login),
        "body": review.body,
        "state": review.state,
        "html_url": html,
        "pull_request_url": f"{api}/pulls/{pr.number}",
        "_links": {"html": {"href": html}, "pull_request": {"href": f"{api}/pulls/{pr.number}"}},
        "submitted_at": iso(review.submitted_at),
        "commit_id": review.commit_id,
        "author_association": "OWNER" if review.login == repo.owner else "COLLABORATOR",
    }


def app_json(sim: GitHubSimulator) -> dict[str, Any]:
    owner = user_json(sim, "countersign-org")
    owner["type"] = "Organization"
    created = iso(datetime(2024, 1, 1, tzinfo=UTC))
    return {
        "id": sim.app_id,
        "slug": sim.app_slug,
        "client_id": f"Iv1.{sim.app_id:016x}",
        "node_id": node_id("Integration", sim.app_id),
        "owner": owner,
        "name": "Countersign",
        "description": "Checks Jira approvals on pull requests and deployments.",
        "external_url": "https://countersign.example.com",
        "html_url": f"{HTML}/apps/{sim.app_slug}",
        "created_at": created,
        "updated_at": created,
        "permissions": dict(APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "installations_count": len({r.installation_id for r in sim.store.repos.values()}),
    }


def installation_json(sim: GitHubSimulator, installation_id: int, account: str) -> dict[str, Any]:
    """The app's installation on `account`, as the repository's installation and a user's installations show it."""
    owner = user_json(sim, account)
    created = iso(datetime(2024, 1, 2, tzinfo=UTC))
    return {
        "id": installation_id,
        "account": owner,
        "repository_selection": "selected",
        "access_tokens_url": f"{sim.api}/app/installations/{installation_id}/access_tokens",
        "repositories_url": f"{sim.api}/installation/repositories",
        "html_url": f"{HTML}/settings/installations/{installation_id}",
        "app_id": sim.app_id,
        "app_slug": sim.app_slug,
        "target_id": owner["id"],
        "target_type": "User",
        "permissions": dict(APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "created_at": created,
        "updated_at": created,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def app_json_for(sim: GitHubSimulator, slug: str) -> dict[str, Any]:
    if slug == sim.app_slug:
        return app_json(sim)
    app_id, owner_login, name = KNOWN_APPS.get(
        slug, (200_000 + int(hashlib.sha1(slug.encode()).hexdigest()[:5], 16), slug, slug)
    )
    owner = user_json(sim, owner_login)
    owner["type"] = "Organization"
    created = iso(datetime(2018, 7, 30, tzinfo=UTC))
    return {
        "id": app_id,
        "slug": slug,
        "client_id": f"Iv1.{app_id:016x}",
        "node_id": node_id("Integration", app_id),
        "owner": owner,
        "name": name,
        "description": "",
        "external_url": f"{HTML}/apps/{slug}",
        "html_url": f"{HTML}/apps/{slug}",
        "created_at": created,
        "updated_at": created,
        "permissions": {"checks": "write", "contents": "write", "deployments": "write", "metadata": "read"},
        "events": ["check_run", "check_suite", "push"],
    }


def simple_commit(commit: _Commit) -> dict[str, Any]:
    return {
        "id": commit.sha,
        "tree_id": commit.tree,
        "message": commit.message,
        "timestamp": iso(commit.date),
        "author": {"name": commit.author.name, "email": commit.author.email},
        "committer": {"name": commit.committer.name, "email": commit.committer.email},
    }


def deployment_json(sim: GitHubSimulator, repo: _Repo, deployment: dict[str, Any]) -> dict[str, Any]:
    api = f"{sim.api}/repos/{repo.full_name}"
    deployment_id = deployment["id"]
    return {
        "url": f"{api}/deployments/{deployment_id}",
        "id": deployment_id,
        "node_id": node_id("Deployment", deployment_id),
        "sha": deployment["sha"],
        "ref": deployment["ref"],
        "task": "deploy",
        "payload": {},
        "original_environment": deployment["environment"],
        "environment": deployment["environment"],
        "description": None,
        "creator": user_json(sim, deployment["creator"]),
        "created_at": iso(deployment["created"]),
        "updated_at": iso(deployment["updated"]),
        "statuses_url": f"{api}/deployments/{deployment_id}/statuses",
        "repository_url": api,
        "transient_environment": False,
        "production_environment": deployment["environment"] == "production",
        "performed_via_github_app": app_json_for(sim, "github-actions"),
    }


def pulls_for_sha(sim: GitHubSimulator, repo: _Repo, sha: str, *, minimal: bool) -> list[dict[str, Any]]:
    found = []
    for pr in repo.pulls.values():
        # Check runs name the open PRs whose head is the commit; the commit's PR listing names closed ones too,
        # and the merged PR that introduced the commit, by every merge method (merge, squash, rebase).
        if minimal and pr.state != "open":
            continue
        head_sha = repo.head_sha(pr)
        introduced = not minimal and (sha in pr.introduced or (pr.state == "open" and sha in pr.queued))
        branch_commit = pr.merged_at is None and sha in repo.only_in(head_sha, repo.branches[pr.base_ref])
        if head_sha == sha or introduced or (not minimal and branch_commit):
            if minimal:
                api = f"{sim.api}/repos/{repo.full_name}"
                minimal_repo = {"id": repo.id, "url": api, "name": repo.name}
                found.append(
                    {
                        "id": pr.id,
                        "number": pr.number,
                        "url": f"{api}/pulls/{pr.number}",
                        "head": {"ref": pr.head_ref, "sha": head_sha, "repo": minimal_repo},
                        "base": {"ref": pr.base_ref, "sha": repo.branches[pr.base_ref], "repo": minimal_repo},
                    }
                )
            else:
                found.append(pull_json(sim, repo, pr))
    return found


def verification_json(commit: _Commit) -> dict[str, Any]:
    if not commit.verified:
        return {"verified": False, "reason": "unsigned", "signature": None, "payload": None, "verified_at": None}
    signature = "-----BEGIN PGP SIGNATURE-----\n\nwsBcBAABCAAQBQJ" + commit.sha[:24] + "\n-----END PGP SIGNATURE-----\n"
    return {
        "verified": True,
        "reason": "valid",
        "signature": signature,
        "payload": f"tree {commit.tree}\n" + "".join(f"parent {p}\n" for p in commit.parents) + "\n" + commit.message,
        "verified_at": iso(commit.date),
    }


def check_suite_json(sim: GitHubSimulator, repo: _Repo, head_sha: str, *, full: bool = False) -> dict[str, Any]:
    suite_id = sim.store.check_suite_id(repo, head_sha)
    runs = [
        r
        for r in sim.store.check_runs.values()
        if r["repo"] == repo.full_name.lower()
        and r["head_sha"] == head_sha
        and r.get("app_slug", sim.app_slug) == sim.app_slug
    ]
    if runs and all(r["status"] == "completed" for r in runs):
        status, conclusion = "completed", worst(r["conclusion"] for r in runs)
    else:
        status, conclusion = ("in_progress" if runs else "queued"), None
    branch = next((b for b, s in sorted(repo.branches.items()) if s == head_sha), None)
    commit = repo.commits.get(head_sha)
    before = commit.parents[0] if commit and commit.parents else "0" * 40
    suite: dict[str, Any] = {
        "id": suite_id,
        "node_id": node_id("CheckSuite", suite_id),
        "head_branch": branch,
        "head_sha": head_sha,
        "status": status,
        "conclusion": conclusion,
        "url": f"{sim.api}/repos/{repo.full_name}/check-suites/{suite_id}",
        "before": before,
        "after": head_sha,
        "pull_requests": pulls_for_sha(sim, repo, head_sha, minimal=True),
        "app": app_json(sim),
        "created_at": iso(min((r["created"] for r in runs), default=now())),
        "updated_at": iso(now()),
    }
    if full:
        suite["check_runs_url"] = f"{sim.api}/repos/{repo.full_name}/check-suites/{suite_id}/check-runs"
        suite["latest_check_runs_count"] = len(runs)
        suite["rerequestable"] = True
        suite["runs_rerequestable"] = True
        if commit is not None:
            suite["head_commit"] = simple_commit(commit)
    return suite


def check_run_json(sim: GitHubSimulator, run: dict[str, Any]) -> dict[str, Any]:
    repo = sim.store.repos[run["repo"]]
    api = f"{sim.api}/repos/{repo.full_name}"
    output = run["output"]
    return {
        "id": run["id"],
        "node_id": node_id("CheckRun", run["id"]),
        "head_sha": run["head_sha"],
        "external_id": run["external_id"],
        "url": f"{api}/check-runs/{run['id']}",
        "html_url": f"{HTML}/{repo.full_name}/runs/{run['id']}",
        "details_url": run["details_url"],
        "status": run["status"],
        "conclusion": run["conclusion"],
        "started_at": run["started_at"],
        "completed_at": run["completed_at"],
        "output": {
            "title": output.get("title"),
            "summary": output.get("summary"),
            "text": output.get("text"),
            "annotations_count": run["annotations_count"],
            "annotations_url": f"{api}/check-runs/{run['id']}/annotations",
        },
        "name": run["name"],
        "check_suite": {"id": run["suite_id"]},
        "app": app_json_for(sim, run.get("app_slug", sim.app_slug)),
        "pull_requests": pulls_for_sha(sim, repo, run["head_sha"], minimal=True),
    }


def worst(conclusions: Iterable[str | None]) -> str | None:
    order = ["failure", "timed_out", "cancelled", "action_required", "stale", "neutral", "skipped", "success"]
    present = [c for c in conclusions if c]
    return min(present, key=order.index) if present else None
