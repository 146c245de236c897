"""The `countersign` command: demo, db upgrade."""

from __future__ import annotations

import sys

import click

from gating.settings import Settings, SettingsError


@click.group(help="Countersign: prove every merge and deployment was approved in Jira.")
def main() -> None:
    pass


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply database migrations (DATABASE_URL; default: a SQLite file in ./instance).")
def db_upgrade() -> None:
    import os

    from gating.db import Database

    url = os.environ.get("DATABASE_URL")
    if not url:
        os.makedirs("instance", exist_ok=True)
        url = f"sqlite:///{os.path.abspath('instance/countersign.sqlite3')}"
    database = Database(url)
    database.upgrade()
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


@main.command("check-settings", help="Validate the environment variables and exit.")
def check_settings() -> None:
    try:
        Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("settings are valid")


if __name__ == "__main__":
    main()
