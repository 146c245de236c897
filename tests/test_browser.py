"""The console in a real browser: Debian's chromium driven by Playwright against a live app and the simulators.

An auditor who has never seen Countersign searches by a commit inside a release, opens the deployment's
dossier, and finds the five answers and their links; the pages fit a 390 px phone without sideways
scrolling and print to PDF. Screenshots and the PDF are kept under test-artifacts/browser/ (or
$COUNTERSIGN_TEST_ARTIFACTS) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import ALICE, CAROL, LiveApp, wait_for

from gating.app import create_app
from gating.db import Database
from gating.policy.answers import QUESTIONS
from gating.settings import Settings, SignInSettings
from jira_client.gateway import JiraGateway
from simulators.github import GitHubSimulator
from simulators.http import serve
from simulators.jira import JiraSimulator

CHROMIUM = os.environ.get("COUNTERSIGN_CHROMIUM", "/usr/bin/chromium")
# As root and offline: no sandbox, and none of the background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLICY = """\
jira:
  projects: [PAY]
identities:
  alice: acc-alice
  carol: acc-carol
  dave: acc-dave
environments:
  production:
    required_checks: [build]
"""

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
if not shutil.which(CHROMIUM):
    pytest.skip(
        f"no chromium at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`; .ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    root = Path(os.environ.get("COUNTERSIGN_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
    folder = root / "browser" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def console(settings: Settings, github: GitHubSimulator, jira: JiraSimulator) -> Iterator[LiveApp]:
    """The app over HTTP with sign-in with GitHub on, its callback registered with the simulated GitHub."""
    server = serve(lambda environ, start_response: app(environ, start_response))
    github.register_oauth_client("Iv23liBrowser", "browser-client-secret-0123456789", f"{server.url}/auth/callback")
    signin = SignInSettings(
        secret_key="s" * 48,
        github_client_id="Iv23liBrowser",
        github_client_secret="browser-client-secret-0123456789",
        cookie_secure=False,  # the test server speaks plain HTTP
    )
    Database(settings.database_url).upgrade()
    gateway = JiraGateway(settings.jira_url, user=settings.jira_user, token=settings.jira_token, timeout=2.0)
    app = create_app(replace(settings, signin=signin), jira=gateway)
    github.webhook_url = f"{server.url}/webhooks/github"
    jira.webhook_url = f"{server.url}/webhooks/jira"
    services = app.extensions["countersign"]
    yield LiveApp(server.url, services, github, jira)
    services.processor.shutdown()
    server.stop()
    services.db.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def released(app: LiveApp, repo: str) -> tuple[str, str, int]:
    """A merged PR for PAY-7 deployed to production and approved: (a commit inside the PR, the deployed SHA,
    the dossier's ledger entry id)."""
    app.jira.add_ticket("PAY-7", "Refund receipts", status="In Review")
    app.jira.transition("PAY-7", "Approved", by="acc-carol")
    app.github.put_file(repo, ".github/countersign.yml", POLICY)
    app.github.add_environment(repo, "production")
    # What production runs today, which the release is measured from.
    base = app.github.add_commit(repo, "main", "PAY-7 groundwork", author=ALICE)
    earlier = app.github.create_deployment(
        repo, ref="main", sha=base, environment="production", creator="dave", deliver=False
    )
    app.github.set_deployment_status(repo, earlier, "success")
    inside = app.github.add_commit(repo, "feature/pay-7", "Receipts for refunds", author=ALICE)
    app.github.add_commit(repo, "feature/pay-7", "Test the receipts", author=ALICE)
    number = app.github.open_pull_request(repo, head="feature/pay-7", title="PAY-7: refund receipts", author="alice")
    deployed = app.github.merge_pull_request(repo, number, by=CAROL, method="merge")
    app.github.add_check_run(repo, deployed, "build")
    app.github.create_deployment(repo, ref="main", sha=deployed, environment="production", creator="dave")

    def decided() -> list[Any]:
        return [e for e in app.services.ledger.search(limit=10) if e.kind == "deployment_decision"]

    (entry,) = wait_for(decided, timeout=20, message="the deployment decision")
    assert entry.decision == "approved", app.github.deployment_answers(repo)[-1]["comment"]
    return inside, deployed, entry.id


def no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def shoot(page: Any, path: Path, *, full_page: bool = False) -> None:
    """A screenshot for the artifacts: a busy machine may take longer than the ten seconds an element is given."""
    page.screenshot(path=str(path), full_page=full_page, timeout=60_000)


def test_an_auditor_signs_in_finds_a_change_by_a_commit_inside_the_release_and_reads_its_dossier(
    console: LiveApp, repo: str, browser: Any, artifacts: Path
) -> None:
    inside, deployed, entry_id = released(console, repo)
    console.github.sign_in_as("bob", "Bob Builder")
    console.github.grant_read("bob", repo)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)  # a missing element fails in seconds, not half a minute
    page = context.new_page()

    page.goto(console.url + "/")
    assert "/login" in page.url, "a browser that has not signed in is sent to sign in"
    shoot(page, artifacts / "sign-in.png", full_page=True)
    page.click("text=Sign in with GitHub")
    page.wait_for_load_state()
    assert page.url.rstrip("/") == console.url, page.url
    assert "bob" in page.inner_text("body")
    page.fill("input[name=sha]", inside[:7])
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    shoot(page, artifacts / "search.png", full_page=True)
    no_sideways_scroll(page)
    page.click(f"a[href='/deployments/{entry_id}']")
    page.wait_for_load_state()
    shoot(page, artifacts / "dossier-390.png", full_page=True)
    shoot(page, artifacts / "dossier-390-first-screen.png")  # what the eye lands on
    no_sideways_scroll(page)

    text = page.inner_text("body")
    positions = [text.find(question) for question in QUESTIONS]
    assert -1 not in positions and positions == sorted(positions), "the five questions, in order"
    assert "PAY-7" in text and "Carol Approver" in text
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert any(href.endswith(f"/commit/{deployed}") for href in hrefs), hrefs
    assert any("/browse/PAY-7" in href for href in hrefs), hrefs

    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, artifacts / "dossier-1280-first-screen.png")
    page.emulate_media(media="print")
    page.pdf(path=str(artifacts / "dossier.pdf"), format="A4")
    assert (artifacts / "dossier.pdf").read_bytes().startswith(b"%PDF")
    context.close()
