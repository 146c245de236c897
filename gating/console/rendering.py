"""The console's HTML: the Jinja templates under `templates/pages`, usable with or without a Flask request."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import g, has_request_context
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gating.console.dossier_view import Links, dossier_view
from gating.console.queries import DECISIONS
from gating.console.wording import parse_time, utc
from gating.ledger.encoding import displayable
from gating.policy.answers import QUESTIONS


def template_folder() -> Path:
    """`templates/` beside the package in a checkout; inside the package once installed from a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "pages").is_dir():
            return candidate
    raise FileNotFoundError(f"Countersign's templates are missing: looked in {package / 'templates'}")


_environment: Environment | None = None


def templates() -> Environment:
    """The Jinja environment for Countersign's pages: autoescaped, usable with or without Flask."""
    global _environment
    if _environment is None:
        env = Environment(
            loader=FileSystemLoader(template_folder()),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["short"] = lambda sha: (sha or "")[:7]
        env.filters["utc"] = utc  # times to the second, in UTC, whatever precision they were recorded with
        env.globals.update(viewer=viewer, csrf_token=csrf_token)
        _environment = env
    return _environment


def viewer() -> Any:
    """Who the page is for (base.html shows them and a sign-out button): set when the request authenticated; None
    outside a request, as for an evidence bundle's pages."""
    return g.get("viewer") if has_request_context() else None


def csrf_token() -> str:
    """The session's CSRF token for a page's forms; empty unless a person with a session cookie is viewing."""
    who = viewer()
    if who is None or not getattr(who, "signed_in", False):
        return ""
    from flask_wtf.csrf import generate_csrf  # only sign-in's pages get here; exports render without Flask-WTF set up

    return str(generate_csrf())


def render_dossier(dossier: Mapping[str, Any], *, now: datetime | None = None, links: Links | None = None) -> str:
    """The dossier page as of `now` (relative times, the "produced at" line); links to GitHub and Jira built from
    `links` only where the evidence records what they point to."""
    moment = now or datetime.now(UTC)
    view = dossier_view(dossier, moment, links, dossier.get("range_base"))
    # Evidence may hold half an emoji exactly as GitHub or Jira sent it; a UTF-8 page shows it as U+FFFD.
    page = templates().get_template("pages/dossier.html")
    return displayable(page.render(d=dossier, v=view, questions=QUESTIONS, produced_at=view["produced_at"]))


def render_export_dossier(dossier: Mapping[str, Any], produced_at: str, links: Links | None = None) -> str:
    """The dossier as a file of an evidence bundle: styles inline, links only to the bundle's files or absolute
    (GitHub's and Jira's, built from `links` as the page builds them)."""
    moment = parse_time(produced_at) or datetime.now(UTC)
    view = dossier_view(dossier, moment, links, dossier.get("range_base"))
    page = templates().get_template("exports/dossier.html")
    return displayable(page.render(d=dossier, v=view, questions=QUESTIONS, produced_at=view["produced_at"]))


def render_export_index(bundle: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The bundle's index.html, in pieces as the rows are read: a period of 100,000 dossiers is never held at once."""
    for piece in templates().get_template("exports/index.html").generate(b=bundle, rows=rows):
        yield displayable(piece)


def render_verify_md(bundle: Mapping[str, Any], example: Mapping[str, Any]) -> str:
    return templates().get_template("exports/VERIFY.md").render(b=bundle, example=example)


def export_script() -> bytes:
    """verify.sh, as it is: shell, not a template."""
    return (template_folder() / "exports" / "verify.sh").read_bytes()


def render_dashboard(
    deployments: Iterable[Mapping[str, Any]],
    emergencies: Iterable[Mapping[str, Any]],
    filters: Mapping[str, str],
    error: str | None = None,
    *,
    page: Mapping[str, Any] | None = None,
    timeline: Iterable[Mapping[str, Any]] = (),
    ledger_state: Mapping[str, Any] | None = None,
) -> str:
    """The dashboard. `page`: total, page, pages, per_page and links of the search; `timeline`: per environment,
    its latest deployments let through; `ledger_state`: `gating.ledger.verification.ledger_state` (entries, head,
    last_checkpoint, last_full_verification; each shown only when present)."""
    return displayable(
        templates()
        .get_template("pages/dashboard.html")
        .render(
            deployments=list(deployments),
            emergencies=list(emergencies),
            filters=filters,
            decisions=DECISIONS,
            error=error,
            page=page,
            timeline=list(timeline),
            ledger=dict(ledger_state or {}),
        )
    )


def render_message(title: str, message: str) -> str:
    return templates().get_template("pages/message.html").render(title=title, message=message)
