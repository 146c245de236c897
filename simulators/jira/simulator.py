"""JiraSimulator: the state tests set up, the switches they flip, and the server that answers as Jira."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from jira_client.models import JiraUser
from simulators.http import Faults, RecordingMiddleware, Served
from simulators.jira import routes, webhooks
from simulators.jira.render import Renderer, fault_body
from simulators.jira.state import JiraState


class JiraSimulator(Served):
    """Jira over real HTTP: state set by tests, endpoints as Jira Cloud or Data Center answers them.

    `deployment_type` "Cloud" serves `/search/jql` and `/issue/{key}/changelog` and answers 410 on the
    removed `/search`; "Server" (Data Center) serves `/search` and answers 404 on the Cloud-only paths.
    Switches: `faults` (see simulators.http), `bad_credentials` (401 on everything),
    `search_changelog_limit` / `issue_changelog_limit` (Cloud truncation of `expand=changelog`) and
    `search_page_limit` (answer fewer issues a page than asked, as Jira may),
    `search_lag` (seconds during which Cloud's search shows a ticket's previous state unless its id
    is in `reconcileIssues`, like Jira's eventually consistent search), `time_zone` (the zone
    times are written in, e.g. `+0200` as a Data Center server in Europe does; UTC by default) and
    `fault_messages` (the `errorMessages` of injected faults, by status, in place of Jira's own).
    """

    def __init__(
        self, deployment_type: str = "Cloud", webhook_url: str | None = None, webhook_secret: str | None = None
    ) -> None:
        if deployment_type not in ("Cloud", "Server"):
            raise ValueError(f"deployment_type must be 'Cloud' or 'Server', not {deployment_type!r}")
        self.deployment_type = deployment_type
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.bad_credentials = False
        self.search_changelog_limit = 20
        self.issue_changelog_limit = 100
        self.search_lag = 0.0
        self.search_page_limit: int | None = None
        self.time_zone: tzinfo = UTC
        self.fault_messages: dict[int, list[str]] = {}
        self.faults = Faults()
        self.store = JiraState()
        self.app = routes.create_app(self)
        self.recorder = RecordingMiddleware(self.app, self.faults, self._fault_body)
        self.wsgi = self.recorder

    @property
    def is_cloud(self) -> bool:
        return self.deployment_type == "Cloud"

    def renderer(self) -> Renderer:
        """Jira's JSON for this flavour, with links under the URL the simulator is served at."""
        return Renderer(
            self.store, cloud=self.is_cloud, base=self.url or "http://jira.example.invalid", zone=self.time_zone
        )

    def _fault_body(self, status: int) -> dict[str, Any]:
        messages = self.fault_messages.get(status)
        return {"errorMessages": list(messages), "errors": {}} if messages else fault_body(status)

    # ----- state API -----

    def add_user(
        self,
        account_id: str,
        display_name: str,
        email: str | None = None,
        name: str | None = None,
        *,
        hide_email: bool = False,
    ) -> JiraUser:
        """Add a person; `hide_email` is the profile setting that makes Jira leave `emailAddress` out.

        Returns the user as Jira's platform API shows them (what Countersign will read).
        """
        user = self.store.add_user(account_id, display_name, email, name, hide_email=hide_email)
        shown = None if hide_email else email
        if self.is_cloud:
            return JiraUser(account_id=account_id, email=shown, display_name=display_name)
        return JiraUser(name=name or account_id, key=user.key, email=shown, display_name=display_name)

    def add_ticket(
        self,
        key: str,
        summary: str = "",
        status: str = "To Do",
        issue_type: str = "Story",
        reporter: str | None = None,
    ) -> None:
        self.store.add_ticket(key, summary, status, issue_type, reporter)

    def transition(
        self,
        key: str,
        to_status: str,
        by: str | None,
        at: datetime | None = None,
        *,
        extra_items: list[dict[str, Any]] | None = None,
    ) -> None:
        """Move the ticket; `extra_items` are other fields changed in the same history (on the transition screen)."""
        with self.store.lock:
            self.store.transition(key, to_status, by, at, extra_items)
            payload = self.issue_updated_payload(key) if self.webhook_url else None
        # Delivered outside the lock: the receiver may well call back into this simulator while handling it.
        if payload is not None:
            webhooks.deliver(self.webhook_url or "", self.webhook_secret, payload)

    def add_history(
        self, key: str, field: str, from_string: str | None, to_string: str | None, by: str | None, at: datetime
    ) -> None:
        """Record a non-status change (noise the client must skip)."""
        self.store.change_field(key, field, from_string, to_string, by, at)

    def set_jsm_approval(
        self,
        key: str,
        approvers: list[tuple[str, str]],
        final_decision: str,
        completed_at: datetime | None,
        *,
        name: str = "Please approve this request",
        created_at: datetime | None = None,
    ) -> str:
        """Add one JSM approval to the request (approvers are (user, decision)); returns its id."""
        return self.store.add_approval(key, name, approvers, final_decision, created_at, completed_at).id

    def delete_ticket(self, key: str) -> None:
        self.store.delete_ticket(key)

    def issue_updated_payload(self, key: str) -> dict[str, Any]:
        """The `jira:issue_updated` webhook body for the ticket's latest change."""
        with self.store.lock:
            return webhooks.issue_updated_payload(self.store.ticket(key), self.renderer())

    def state(self) -> dict[str, Any]:
        """Every ticket as the issue endpoint shows it, with its approvals."""
        with self.store.lock:
            render = self.renderer()
            return {
                "deploymentType": self.deployment_type,
                "tickets": {
                    key: {
                        **render.issue(t, None, expand_changelog=True, limit=None),
                        "approvals": [render.approval(a) for a in t.approvals],
                    }
                    for key, t in sorted(self.store.tickets.items())
                },
            }
