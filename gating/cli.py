"""The `countersign` command: demo, serve, worker, db upgrade, check-settings, verify, checkpoint, key, token, export,
purge, hold, emergencies, deliveries."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gating.settings import Settings, SettingsError, read_database_url

if TYPE_CHECKING:
    from gating.console.dossier_view import Links
    from gating.console.queries import DeploymentQuery
    from gating.db import Database
    from gating.intake.jobs import Processor
    from gating.ledger import Ledger, VerifyResult
    from gating.services import Services


@click.group(help="Countersign: prove every merge and deployment was approved in Jira.")
def main() -> None:
    pass


def _database_url() -> str:
    """DATABASE_URL, else the SQLite file in the instance folder that the app uses by default."""
    try:
        return read_database_url(os.environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _migrated_database() -> Database:
    from gating.db import Database, DatabaseUnavailable, NotMigrated

    database = Database(_database_url())
    try:
        database.require_migrated()
    except (NotMigrated, DatabaseUnavailable) as exc:
        database.dispose()
        raise click.ClickException(str(exc)) from None
    return database


def _ledger(database: Database) -> Ledger:
    from gating.ledger import Ledger, LedgerKeyError, signing_key_from_env

    try:
        return Ledger(database, signing_key_from_env())
    except LedgerKeyError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _open_database(*failures: type[Exception]) -> Iterator[Database]:
    """The migrated database for one command, disposed of however the command ends; any of `failures` raised
    meanwhile is the command's one error line rather than a traceback."""
    database = _migrated_database()
    try:
        yield database
    except failures as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()


@contextmanager
def _open_ledger(*failures: type[Exception]) -> Iterator[Ledger]:
    """_open_database, for a command that works on the ledger."""
    with _open_database(*failures) as database:
        yield _ledger(database)


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply database migrations (DATABASE_URL; default: a SQLite file in ./instance).")
def db_upgrade() -> None:
    from sqlalchemy.exc import OperationalError

    from gating.db import Database, DatabaseUnavailable, connection_failure

    url = _database_url()
    database = Database(url)
    try:
        database.upgrade()
    except OperationalError as exc:
        raise click.ClickException(str(DatabaseUnavailable(url, connection_failure(exc, url)))) from None
    finally:
        database.dispose()
    click.echo("database is up to date")


@main.command(help="Run Countersign against built-in GitHub and Jira simulators, with no credentials.")
@click.option("--port", default=8000, show_default=True, help="Port for the app.")
@click.option("--github-port", default=8001, show_default=True, help="Port for the simulated GitHub.")
@click.option("--jira-port", default=8002, show_default=True, help="Port for the simulated Jira.")
@click.option("--exit-after-scenario", is_flag=True, help="Stop after the scripted scenario instead of serving.")
def demo(port: int, github_port: int, jira_port: int, exit_after_scenario: bool) -> None:
    from gating.demo import run_demo

    sys.exit(run_demo(port=port, github_port=github_port, jira_port=jira_port, keep_serving=not exit_after_scenario))


@main.command(
    help="Serve the web app under gunicorn with gating.gunicorn_conf's settings (PORT, WEB_CONCURRENCY, "
    "GUNICORN_THREADS, GUNICORN_TIMEOUT, …; see the README). Refuses to start on bad settings or an unreachable or "
    "un-migrated database, naming each problem."
)
@click.option(
    "--bind",
    "-b",
    multiple=True,
    help="HOST:PORT (or unix:PATH) to listen on; repeatable. Default 0.0.0.0:$PORT, else 127.0.0.1:8000.",
)
@click.option("--workers", "-w", type=click.IntRange(1, 64), help="Worker processes. Default $WEB_CONCURRENCY, else 2.")
@click.option("--threads", type=click.IntRange(1, 256), help="Threads per worker. Default $GUNICORN_THREADS, else 8.")
def serve(bind: tuple[str, ...], workers: int | None, threads: int | None) -> None:
    options: dict[str, Any] = {"bind": list(bind), "workers": workers, "threads": threads}
    try:
        application = _gunicorn_application({name: value for name, value in options.items() if value})
    except SettingsError as exc:  # a gunicorn variable (PORT, WEB_CONCURRENCY, …) that is not a number
        raise click.ClickException(str(exc)) from exc
    application.run()


def _gunicorn_application(options: dict[str, Any]) -> Any:
    """gunicorn with gating.gunicorn_conf, then `options` over it (as its command line would), serving create_app().

    Built here rather than through `gunicorn app:app` so that it runs from an installed package, in any folder.
    """
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    from gunicorn.errors import AppImportError  # type: ignore[import-untyped]

    from gating import gunicorn_conf

    class Countersign(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            # What `-c python:gating.gunicorn_conf` does: every module variable named like a gunicorn setting.
            for name, value in vars(gunicorn_conf).items():
                if name in self.cfg.settings and value is not None:
                    self.cfg.set(name, value)
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            from gating.app import create_app
            from gating.db import DatabaseUnavailable, NotMigrated

            try:
                return create_app()
            except (SettingsError, NotMigrated, DatabaseUnavailable) as exc:
                # The master checked all this before forking; should it have changed since, gunicorn prints an
                # AppImportError as its one line and stops, where any other exception is a traceback per worker.
                raise AppImportError(str(exc)) from None

    return Countersign()


@main.command(
    "check-settings",
    help="Check the environment variables for real: the app id, the keys (parsed), the URLs, the database "
    "(reachable and migrated) and, with --online, that GitHub and Jira accept the credentials. Names every "
    "problem and exits 1 when there is any.",
)
@click.option("--online", is_flag=True, help="Also ask GitHub (GET /app, with the app's JWT) and Jira (myself).")
def check_settings(online: bool) -> None:
    from gating.settings import github_app_credentials, jira_credentials

    env = os.environ
    problems: list[str] = []
    try:
        Settings.from_env(env, check_keys=True)
    except SettingsError as exc:
        problems.extend(exc.problems)
    for line in problems:
        click.echo(f"problem: {line}")

    def report(outcome: tuple[bool, str]) -> None:
        ok, line = outcome
        if not ok:
            problems.append(line)
        click.echo(f"{'ok' if ok else 'problem'}: {line}")

    folder = env.get("COUNTERSIGN_CHECKPOINT_DIR", "").strip()
    if folder:
        from gating.ledger.checkpoint_files import directory_problem

        unwritable = directory_problem(folder)
        report((unwritable is None, unwritable or f"checkpoints are written into {folder}"))
    try:
        database_url = read_database_url(env)
    except SettingsError:
        pass  # named above
    else:
        report(_check_database(database_url, given="DATABASE_URL" in env and bool(env["DATABASE_URL"].strip())))

    if online:
        # The clients' own warnings would repeat, unformatted, what the lines below say.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            github = github_app_credentials(env)
            if github is None:
                click.echo("skipped: GitHub not contacted until its settings above are fixed")
            else:
                report(_check_github(github.app_id, github.private_key, github.api_url, github.timeout))
            jira = jira_credentials(env)
            if jira is None:
                click.echo("skipped: Jira not contacted until its settings above are fixed")
            else:
                report(_check_jira(jira.url, jira.user, jira.token, jira.timeout))
        finally:
            logging.disable(previous)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")
    if online:
        click.echo("settings are valid")
    else:
        click.echo("settings are valid (GitHub and Jira not contacted: add --online to check the credentials)")


def _check_database(url: str, *, given: bool) -> tuple[bool, str]:
    """Whether the database answers and is migrated; (ok, the line to print). Never shows the password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from gating.db import Database, DatabaseUnavailable, NotMigrated

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    label = f"DATABASE_URL={shown}" if given else f"the default database {shown} (DATABASE_URL is not set)"
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not file.startswith("file:") and not Path(file).exists():
        # Connecting would create an empty file, and a check should leave nothing behind.
        return False, f"{label}: the file does not exist yet; run `countersign db upgrade`"
    database = Database(url)
    try:
        database.require_migrated()
    except DatabaseUnavailable as exc:
        return False, f"{label}: cannot connect: {exc.reason}"
    except NotMigrated:
        return False, f"{label}: not migrated to this version of Countersign; run `countersign db upgrade`"
    except SQLAlchemyError as exc:  # e.g. no right to read the schema: still one line, not a traceback
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        return False, f"{label}: {type(exc).__name__}: {first}"
    finally:
        database.dispose()
    return True, f"database reachable and migrated ({shown})"


def _check_github(app_id: str, private_key: str, api_url: str, timeout: float) -> tuple[bool, str]:
    """GET /app with the app's JWT: proves the app id, the private key and GITHUB_API_URL together."""
    import requests

    from gating.github_api import GitHubApp

    token = GitHubApp(app_id, private_key, api_url, timeout=timeout).app_jwt()
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "countersign-check-settings",
    }
    try:
        response = requests.get(f"{api_url}/app", headers=headers, timeout=timeout)
    except requests.Timeout:
        return False, f"GITHUB_API_URL={api_url}: GitHub did not answer GET /app within {timeout:g} s"
    except requests.RequestException as exc:
        return False, f"GITHUB_API_URL={api_url}: GitHub could not be reached ({_connection_reason(exc)})"
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code == 401:
        return False, (
            f"GitHub refused the app's JWT (HTTP 401: {message or 'no details'}): check GITHUB_APP_ID={app_id} and "
            "that the private key is one of the app's current keys"
        )
    if response.status_code != 200 or not isinstance(body, dict) or "id" not in body:
        detail = f": {message}" if message else ""
        return False, (
            f"GITHUB_API_URL={api_url} answered GET /app with HTTP {response.status_code}{detail}, not as GitHub's "
            "REST API does (GitHub Enterprise Server: https://HOST/api/v3)"
        )
    name = body.get("slug") or body.get("name") or "?"
    return True, f"GitHub accepts the app's JWT: app {name} (id {body['id']}) at {api_url}"


def _check_jira(url: str, user: str | None, token: str | None, timeout: float) -> tuple[bool, str]:
    """Jira's `myself` with the configured credentials: proves JIRA_URL, JIRA_USER and JIRA_TOKEN together."""
    from jira_client.gateway import JiraGateway
    from jira_client.models import JiraUnavailable

    # No retries: a check reports what Jira answers now, in seconds.
    gateway = JiraGateway(url, user=user, token=token, timeout=timeout, retries=0)
    try:
        me = gateway.myself()
    except JiraUnavailable as exc:
        if exc.kind == "credentials":
            given = "JIRA_USER and JIRA_TOKEN" if user else "JIRA_TOKEN" if token else "no JIRA_TOKEN"
            return False, f"Jira at {url} refused the credentials (HTTP {exc.status}): check {given}"
        if exc.kind == "timeout":
            return False, f"JIRA_URL={url}: Jira did not answer within {timeout:g} s"
        if exc.kind == "connection":
            return False, f"JIRA_URL={url}: Jira could not be reached"
        return False, f"JIRA_URL={url}: Jira answered HTTP {exc.status} to myself; is this Jira's base URL?"
    except Exception as exc:  # not Jira at all (an HTML page, a proxy's answer): still one line
        return False, f"JIRA_URL={url} did not answer as Jira does ({type(exc).__name__}); is this Jira's base URL?"
    return True, f"Jira accepts the credentials: signed in as {me.label()} at {url}"


def _connection_reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` out of urllib3's long wrapper text."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found.group(1).strip() if found else type(exc).__name__


@main.command(help="Recompute the evidence ledger's hash chain (and signatures, with COUNTERSIGN_SIGNING_KEY_PATH).")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also prove the ledger still extends this checkpoint (catches a truncated tail or a rebuilt chain).",
)
@click.option(
    "--public-key",
    "public_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM Ed25519 public key to check signatures with, instead of the signing key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(checkpoint_file: Path | None, public_key_file: Path | None, as_json: bool) -> None:
    from gating.ledger import LedgerKeyError, load_public_key, verify_against_checkpoint
    from gating.ledger.purges import describe_purges
    from gating.ledger.signing import describe_spans
    from gating.ledger.verification import verify_in_full

    with _open_ledger() as ledger:
        try:
            public_key = load_public_key(public_key_file) if public_key_file else None
        except (LedgerKeyError, ValueError) as exc:
            raise click.ClickException(f"{public_key_file}: {exc}") from exc
        if checkpoint_file is not None:
            try:
                checkpoint = json.loads(checkpoint_file.read_text())
            except ValueError as exc:
                raise click.ClickException(f"{checkpoint_file} is not a JSON checkpoint: {exc}") from exc
            if not isinstance(checkpoint, dict):
                raise click.ClickException(f"{checkpoint_file} is not a JSON checkpoint object")
            result = verify_against_checkpoint(ledger, checkpoint, public_key)
        else:
            # Recorded as the last full verification, which dossier pages show.
            result = verify_in_full(ledger, public_key).result
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        click.echo(f"ledger OK: {result.count} entries, head {result.head_hash}")
        if result.purged:
            click.echo(describe_purges(result.purged))
        click.echo(describe_spans(result.spans))
        click.echo(_signatures_line(result))
        if checkpoint_file is not None:
            click.echo(f"extends the checkpoint in {checkpoint_file}")
    else:
        reason = result.reason or "unknown"
        if result.first_bad_sequence is None:
            click.echo(f"ledger BROKEN: {reason}")
        else:
            reason = reason.removeprefix(f"entry {result.first_bad_sequence}: ")
            click.echo(f"ledger BROKEN at entry {result.first_bad_sequence}: {reason}")
        if result.purged:
            click.echo(describe_purges(result.purged))
        if result.spans:
            where = "" if result.first_bad_sequence is None else "verified before it: "
            click.echo(where + describe_spans(result.spans))
    sys.exit(0 if result.ok else 1)


def _signatures_line(result: VerifyResult) -> str:
    states = {span.state for span in result.spans}
    if result.signatures_checked:
        return "signatures verified"
    if "signed" in states:
        # The chain's own keys vouch only for themselves: a chain rebuilt with a forger's key would look the same.
        return (
            "signatures match the keys the ledger records, but were not checked against a key you trust "
            "(give --public-key, or set COUNTERSIGN_SIGNING_KEY_PATH)"
        )
    if "unchecked" in states:
        return "signatures not checked (no key given)"
    return "no entry is signed"


@main.command(
    help="Write a checkpoint (entry count and head hash, signed with the ledger key) to keep elsewhere: "
    "to --output, else as JSON on stdout."
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write; default stdout.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write a new, timestamped checkpoint file into (never overwriting one).",
)
def checkpoint(output: Path | None, out_dir: Path | None) -> None:
    from gating.ledger import make_checkpoint

    if out_dir is not None:
        _checkpoint_into(out_dir)
        return

    with _open_ledger() as ledger:
        # A checkpoint vouches for the chain, so never take one of a chain that does not verify.
        result = ledger.verify()
        if not result.ok:
            raise click.ClickException(f"ledger BROKEN, no checkpoint written: {result.reason}")
        data = make_checkpoint(ledger, ledger.signing_key)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    signed = "signed" if "signature" in data else "UNSIGNED (set COUNTERSIGN_SIGNING_KEY_PATH to sign)"
    described = f"{data['count']} entries, head {data['head_hash']}, {signed}"
    if output is None:
        # Only the checkpoint on stdout, so `countersign checkpoint > file` or a pipe gets clean JSON.
        click.echo(text, nl=False)
        click.echo(f"checkpoint of {described}", err=True)
    else:
        output.write_text(text)
        click.echo(f"checkpoint written to {output}: {described}")


def _checkpoint_into(folder: Path) -> None:
    from gating.ledger.checkpoint_files import LedgerBroken, directory_problem, write_checkpoint_file

    problem = directory_problem(folder)
    if problem:
        raise click.ClickException(problem.removeprefix("COUNTERSIGN_CHECKPOINT_DIR="))
    with _open_ledger(LedgerBroken) as ledger:
        path = write_checkpoint_file(ledger, folder)
    click.echo(f"checkpoint written to {path}")


@main.group(help="The ledger's signing key.")
def key() -> None:
    pass


@key.command(
    "rotate",
    help="Record in the ledger that a new Ed25519 key signs from now on, signed by the current key "
    "(COUNTERSIGN_SIGNING_KEY_PATH); then point COUNTERSIGN_SIGNING_KEY_PATH at the new key and restart. "
    "On a ledger nothing has signed yet, this turns signing on with the new key.",
)
@click.option(
    "--new-key",
    "new_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="PEM Ed25519 private key that takes over (openssl genpkey -algorithm ed25519 -out new.pem).",
)
def key_rotate(new_key_file: Path) -> None:
    from gating.ledger import LedgerKeyError, load_signing_key
    from gating.ledger.signing import short_key

    with _open_ledger(LedgerKeyError) as ledger:
        new_key = load_signing_key(new_key_file)
        # A key change vouches for the chain before it, so never record one on a chain that does not verify.
        result = ledger.verify()
        if not result.ok:
            raise click.ClickException(f"ledger BROKEN, no key change recorded: {result.reason}")
        entry = ledger.rotate_key(new_key)
    new, previous = entry.data["public_key"], entry.data["previous_public_key"]
    if previous:
        click.echo(
            f"entry {entry.sequence} records the key change from {short_key(previous)} to {short_key(new)}, "
            "signed by the old key"
        )
    else:
        click.echo(f"entry {entry.sequence} turns signing on with key {short_key(new)}")
    click.echo(
        f"next: set COUNTERSIGN_SIGNING_KEY_PATH={new_key_file} and restart Countersign; entries the old key signs "
        "until then still verify"
    )


@main.group(help="API tokens for /api/v1 (stored hashed; shown once).")
def token() -> None:
    pass


@token.command("create", help="Create a token; it is printed once, on the last line.")
@click.option("--name", required=True, help="A unique name, e.g. who or what uses it.")
@click.option(
    "--repos",
    default=None,
    help="Comma-separated repository patterns it may see, e.g. 'acme/*,other/web'; default: every repository.",
)
def token_create(name: str, repos: str | None) -> None:
    from gating.console.auth import TokenError, create_token

    with _open_database(TokenError) as database:
        value = create_token(database, name, datetime.now(UTC), repos)
    click.echo(f"token {name!r} created; it is shown only now, store it safely:")
    click.echo(value)


@token.command("revoke", help="Revoke a token by name; requests carrying it get 401 from now on.")
@click.argument("name")
def token_revoke(name: str) -> None:
    from gating.console.auth import TokenError, revoke_token

    with _open_database(TokenError) as database:
        revoke_token(database, name, datetime.now(UTC))
    click.echo(f"token {name!r} revoked")


@token.command("list", help="Token names, the repositories each sees, dates and last use (never the tokens).")
def token_list() -> None:
    from gating.console.auth import list_tokens

    with _open_database() as database:
        tokens = list_tokens(database)
    if not tokens:
        click.echo("no tokens (create one with `countersign token create --name NAME`)")
    for info in tokens:
        state = f"revoked {_date(info.revoked_at)}" if info.revoked_at else "active"
        used = f"last used {_date(info.last_used_at)}" if info.last_used_at else "never used"
        click.echo(f"{info.name}\tcreated {_date(info.created_at)}\t{state}\t{info.scope.describe()}\t{used}")


@main.command(
    help="Export deployment dossiers: one (--id) as JSON or a printable HTML page; an evidence bundle for a period "
    "(--since, --until, --out DIR) that a third party can verify with sha256sum and openssl; or, without --out, a "
    "JSON array of all those matching --repo/--environment/--since/--until (audit sampling)."
)
@click.option("--id", "entry_id", type=int, help="Ledger entry id of one deployment decision.")
@click.option("--repo", help="Repository (owner/name).")
@click.option("--environment", help="Environment, e.g. production.")
@click.option("--since", help="From this ISO-8601 date or datetime (UTC unless it names a zone).")
@click.option("--until", help="Up to this ISO-8601 datetime, or through the end of this date.")
@click.option("--decision", type=click.Choice(["approved", "rejected", "emergency"]), help="Only this decision.")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "html"]), default=None, help="Output format (default json)."
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write; default stdout.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write an evidence bundle into this new directory (needs --since and --until): see its VERIFY.md.",
)
def export(
    entry_id: int | None,
    repo: str | None,
    environment: str | None,
    since: str | None,
    until: str | None,
    decision: str | None,
    fmt: str | None,
    output: Path | None,
    out_dir: Path | None,
) -> None:
    from gating.console.dossiers import load_dossier
    from gating.console.exports import stream_json_array
    from gating.console.queries import BadParameter, DeploymentQuery
    from gating.console.rendering import render_dossier
    from gating.console.scope import EVERYTHING
    from gating.ledger.encoding import escape_lone_surrogates

    selecting = any(v is not None for v in (repo, environment, since, until, decision))
    if out_dir is not None:
        if entry_id is not None or fmt is not None or output is not None:
            raise click.UsageError("--out writes a bundle of JSON and HTML files: no --id, --format or --output")
        if since is None or until is None:
            raise click.UsageError("an evidence bundle covers a period: give --since and --until")
    elif entry_id is None and not selecting:
        raise click.UsageError("give --id N, or --repo/--environment/--since/--until/--decision to select several")
    if entry_id is not None and selecting:
        raise click.UsageError("--id exports one dossier; it cannot be combined with search options")
    if entry_id is None and fmt == "html":
        raise click.UsageError("HTML exports one dossier: give --id N, or --out DIR for a bundle with a page each")
    if entry_id is None:
        args = {"repo": repo or "", "environment": environment or "", "since": since or "", "until": until or ""}
        args["decision"] = decision or ""
        try:
            query = DeploymentQuery.from_args(args)
        except BadParameter as exc:
            raise click.BadParameter(exc.message, param_hint=f"--{exc.name}") from exc
        query = dataclasses.replace(query, limit=None)
    if out_dir is not None:
        _export_bundle(query, out_dir)
        return
    with _open_ledger() as ledger:
        verification = ledger.verify()
        if entry_id is not None:
            dossier = load_dossier(ledger, entry_id, EVERYTHING, verification)
            if dossier is None:
                raise click.ClickException(f"no deployment decision with ledger entry id {entry_id}")
            if fmt == "html":
                text = render_dossier(dossier, links=_export_links())
            else:
                text = escape_lone_surrogates(json.dumps(dossier, indent=2, sort_keys=True, ensure_ascii=False)) + "\n"
            if output is None:
                click.echo(text, nl=False)
            else:
                output.write_text(text, encoding="utf-8")
                click.echo(f"1 dossier(s) written to {output}", err=True)
        elif output is None:
            # One dossier at a time, however long the period: never the whole array in memory.
            stream_json_array(ledger, query, verification, sys.stdout)
        else:
            with output.open("w", encoding="utf-8") as handle:
                count = stream_json_array(ledger, query, verification, handle)
            click.echo(f"{count} dossier(s) written to {output}", err=True)
    if not verification.ok:
        click.echo(f"warning: ledger BROKEN: {verification.reason}", err=True)


def _export_links() -> Links:
    """Links to GitHub and Jira as the dossier page has them: from GITHUB_API_URL (github.com by default, as the
    app's) and JIRA_URL, the variables the app itself reads."""
    from gating.console.dossier_view import Links

    return Links.from_api(os.environ.get("GITHUB_API_URL") or "https://api.github.com", os.environ.get("JIRA_URL"))


def _export_bundle(query: DeploymentQuery, out_dir: Path) -> None:
    from gating.console.exports import BundleError, command_line, write_bundle

    with _open_ledger(BundleError) as ledger:
        bundle = write_bundle(ledger, query, out_dir, command=command_line(query, out_dir), links=_export_links())
    click.echo(f"evidence bundle written to {out_dir}: {bundle.describe()}")
    click.echo(f"a third party checks it with: bash {out_dir / 'verify.sh'} (see {out_dir / 'VERIFY.md'})")
    if not bundle.verification.ok:
        click.echo(f"warning: ledger BROKEN: {bundle.verification.reason}", err=True)
        sys.exit(1)


@main.command(
    help="Remove the ledger's oldest entries past retention that no legal hold keeps, and record what was removed "
    "in a retention_purge entry, so that verification continues across the gap. Only a contiguous run of the "
    "oldest entries is removed: up to the first entry within retention, under a hold, or the newest entry."
)
@click.option("--older-than", required=True, help="Retention: Nd, Nw or Ny (calendar years), e.g. 7y; at least 1d.")
@click.option("--dry-run", is_flag=True, help="Say what would be purged and what is kept, and change nothing.")
def purge(older_than: str, dry_run: bool) -> None:
    from gating.ledger.purges import DASH, Retention
    from gating.ledger.retention import RetentionError, plan_purge
    from gating.ledger.retention import purge as purge_entries

    try:
        rule = Retention.parse(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    with _open_ledger(RetentionError) as ledger:
        plan = plan_purge(ledger, rule)
        for line in plan.describe():
            click.echo(line)
        if dry_run:
            result = ledger.verify()
            verdict = "the ledger verifies" if result.ok else f"ledger BROKEN, a purge would refuse: {result.reason}"
            click.echo(f"dry run, nothing purged; {verdict}")
            return
        written = purge_entries(ledger, plan)
    if not written:
        click.echo("nothing purged")
    for entry in written:
        first, last = entry.data["range"]["first"], entry.data["range"]["last"]
        click.echo(f"entries {first}{DASH}{last} purged, recorded by entry {entry.sequence}")


@main.group(help="Legal holds: entries the retention purge keeps, by repository or by Jira ticket.")
def hold() -> None:
    pass


@hold.command("add", help="Keep every ledger entry of a repository, or naming a ticket, until the hold is removed.")
@click.option("--repo", help="Repository (owner/name).")
@click.option("--ticket", help="Jira key, e.g. PAY-101: entries that name it.")
@click.option("--reason", required=True, help="The matter or request the hold serves.")
def hold_add(repo: str | None, ticket: str | None, reason: str) -> None:
    from gating.ledger.retention import RetentionError, place_hold

    if (repo is None) == (ticket is None):
        raise click.UsageError("give --repo R or --ticket K (one per hold)")
    with _open_ledger(RetentionError) as ledger:
        placed = place_hold(ledger, repository=repo, ticket=ticket, reason=reason)
    click.echo(f"legal hold {placed.id} placed on {placed.scope()}, recorded by entry {placed.placed_entry}")


@hold.command("list", help="Legal holds in place (with --all, lifted ones too).")
@click.option("--all", "include_lifted", is_flag=True, help="Also the holds that were removed.")
def hold_list(include_lifted: bool) -> None:
    from gating.ledger.retention import list_holds

    with _open_database() as database:
        holds = list_holds(database, include_lifted=include_lifted)
    if not holds:
        click.echo("no legal holds")
    for found in holds:
        state = f"removed {_date(found.released_at)}" if found.released_at else "in place"
        click.echo(f"{found.id}\t{found.scope()}\tplaced {_date(found.placed_at)}\t{state}\t{found.reason}")


@hold.command("remove", help="Lift legal hold ID; what it kept may be purged again. Recorded in the ledger.")
@click.argument("hold_id", type=int)
def hold_remove(hold_id: int) -> None:
    from gating.ledger.retention import RetentionError, lift_hold

    with _open_ledger(RetentionError) as ledger:
        lifted = lift_hold(ledger, hold_id)
    click.echo(f"legal hold {lifted.id} on {lifted.scope()} removed, recorded by entry {lifted.released_entry}")


def _date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _app_services(processor: Processor | None = None) -> Services:
    """The app's services for a command that runs the gates' code: settings from the environment, JSON logs
    (their lines are what cron and systemd keep), and a migrated database — else one clear error line."""
    from gating.app import build_services
    from gating.db import DatabaseUnavailable, NotMigrated
    from gating.logs import configure_from_settings

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_from_settings(settings)
    services = build_services(settings, **({"processor": processor} if processor is not None else {}))
    try:
        services.db.require_migrated()
    except (NotMigrated, DatabaseUnavailable) as exc:
        services.db.dispose()
        raise click.ClickException(str(exc)) from None
    return services


@main.group(help="Emergency changes awaiting approval after the fact.")
def emergencies() -> None:
    pass


@emergencies.command(
    "recheck",
    help="Re-read the tickets of open emergency changes and record those now approved (run it periodically, "
    "e.g. hourly from cron; Jira webhooks do the same as tickets change). Needs the app's environment variables.",
)
def emergencies_recheck() -> None:
    from gating.gates.emergencies import awaiting_approval, recheck_emergencies
    from gating.intake.jobs import InlineProcessor
    from gating.policy.emergency import is_overdue

    services = _app_services(InlineProcessor())
    pending = awaiting_approval(services.db)
    resolved = recheck_emergencies(services)
    now = services.clock()
    overdue = [e for e in awaiting_approval(services.db) if is_overdue(e.deadline, now)]
    click.echo(f"{len(pending)} open emergency change(s); {len(resolved)} approved after the fact now")
    for emergency in overdue:
        click.echo(
            f"overdue: {emergency.repository} {emergency.environment} {emergency.sha[:7]} "
            f"({emergency.tickets}) was due {emergency.deadline:%Y-%m-%d %H:%M} UTC"
        )
    services.db.dispose()


@main.group(help="Webhook deliveries.")
def deliveries() -> None:
    pass


@deliveries.command(
    "recover",
    help="Ask GitHub to redeliver what it failed to send while Countersign was down (the last three days). "
    "The app does this by itself at start and every five minutes. Needs the app's environment variables.",
)
def deliveries_recover() -> None:
    from gating.intake.recovery import recover_missed_deliveries

    services = _app_services()
    try:
        asked = recover_missed_deliveries(services)
    finally:
        services.db.dispose()
    click.echo(f"{len(asked)} delivery(ies) GitHub failed to send asked for again")


@main.command(
    help="Run the jobs: merge checks, deploy decisions and the periodic work (procrastinate's worker on PostgreSQL, "
    "the stored deliveries on SQLite). Run as many as wanted, on as many machines, against one database; set "
    "COUNTERSIGN_EMBEDDED_WORKER=false on the web processes so that they only verify, store and enqueue."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Jobs run at once on each queue (merge, deploy). Default $COUNTERSIGN_WORKERS, else 4.",
)
def worker(concurrency: int | None) -> None:
    import signal
    import threading

    from gating.app import start_worker
    from gating.intake.queue import uses_job_queue

    services = _app_services()
    settings = services.settings
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    running = start_worker(services, concurrency)
    count = concurrency or settings.workers
    kind = "procrastinate job queue" if uses_job_queue(settings.database_url) else "deliveries table"
    click.echo(f"worker running on the {kind}: {count} merge and {count} deploy job(s) at once", err=True)
    stop.wait()
    # Finish what is under way; what is not started stays queued for the next worker.
    running.shutdown()
    services.db.dispose()
    click.echo("worker stopped", err=True)
