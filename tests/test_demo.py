"""`countersign demo` (what `make run` starts) plays its scenario under gunicorn and exits cleanly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_scenario_runs_end_to_end() -> None:
    countersign = Path(sys.executable).parent / "countersign"
    result = subprocess.run(
        [
            str(countersign),
            "demo",
            "--exit-after-scenario",
            "--port",
            str(free_port()),
            "--github-port",
            str(free_port()),
            "--jira-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert (
        "❌ check run 'Countersign': failure\n     PAY-101 is In Review; it needs to be moved to Approved in Jira"
        in out
    )
    assert "✅ check run 'Countersign': success\n     1 ticket approved by someone other than the authors" in out
    assert "PAY-102: Alice Developer approved it but is also the PR author" in out
    assert "❌ deployment to production: rejected\n     - PAY-103 is In Review" in out
    assert "✅ deployment to production: approved" in out
    assert "Bob merges PR #1 into main." in out
    assert (
        "PAY-104 is an emergency change: it may ship now, but needs approval by someone other than the authors" in out
    )
    # Entry 1 turns signing on; the three deployment decisions follow, each signed.
    assert "verification: OK, 4 entries" in out and "every entry signed" in out
    assert "/login?provider=github\n  ✅ signs in as bob, who sees acme/payments" in out
