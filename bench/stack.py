"""What both benchmarks run on: simulated GitHub and Jira, and Countersign under gunicorn on SQLite."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gating.db import Database
from gating.demo import app_environment, launch_app, wait_healthy
from simulators.github import GitHubSimulator, generate_app_key
from simulators.jira import JiraSimulator

SECRET = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    github: GitHubSimulator
    jira: JiraSimulator
    server: subprocess.Popen[bytes]
    url: str

    @property
    def hook(self) -> str:
        return f"{self.url}/webhooks/github"

    def stop(self) -> None:
        self.github.faults.latency = self.jira.faults.latency = 0
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.github.stop()
        self.jira.stop()


def start_stack() -> Stack:
    """Simulators in this process; the app in its own (gunicorn), as deployed."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    private_pem, public_pem = generate_app_key()
    github = GitHubSimulator(app_id=1, app_public_key_pem=public_pem, webhook_secret=SECRET)
    jira = JiraSimulator(deployment_type="Cloud", webhook_secret=SECRET)
    github.start()
    jira.start()
    database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='countersign-bench-')) / 'bench.sqlite3'}"
    Database(database_url).upgrade()
    env = app_environment(github, jira, private_pem, SECRET, SECRET, database_url)
    port = free_port()
    server = launch_app(port, env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, server)
    github.webhook_url = f"{url}/webhooks/github"
    return Stack(github, jira, server, url)
