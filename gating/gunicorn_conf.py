"""gunicorn's settings for Countersign: JSON logs at LOG_LEVEL, sizes and timeouts from the environment, and a
boot check that refuses to start on bad settings or an unreachable or un-migrated database.

    gunicorn -c python:gating.gunicorn_conf app:app          (from a checkout)
    countersign serve                                        (from an installed package; same settings)

| variable | gunicorn setting | default |
|---|---|---|
| `PORT` | `bind` `0.0.0.0:$PORT` | `127.0.0.1:8000` when PORT is unset |
| `WEB_CONCURRENCY` | `workers` (processes) | 2 |
| `GUNICORN_THREADS` | `threads` per worker | 8 |
| `GUNICORN_TIMEOUT` | `timeout`: a worker silent this long is killed and replaced | 30 |
| `GUNICORN_GRACEFUL_TIMEOUT` | `graceful_timeout`: time to finish requests after SIGTERM | 30 |
| `GUNICORN_KEEPALIVE` | `keepalive` (seconds an idle connection is kept) | 5 |
| `GUNICORN_CONTROL_SOCKET` | `control_socket` (gunicornc); off unless set | off |

Command-line options (`--bind`, `--workers`, `--threads`, …) override these.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from gating.logs import gunicorn_logconfig
from gating.settings import SettingsError, read_log_level


def _whole(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = 1 << 31) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw!r} is not a whole number from {minimum} to {maximum}")
    return value


# Read here too, so that gunicorn's own lines follow LOG_LEVEL and a bad value stops it before any worker starts.
_level = read_log_level(os.environ)

loglevel = _level.lower()
logconfig_dict = gunicorn_logconfig(_level)
proc_name = "countersign"

# gunicorn's own convention: PORT means "listen on every interface of this container or dyno". Without it,
# only this machine, so that a checkout's server is not exposed by default.
bind = [f"0.0.0.0:{_whole(os.environ, 'PORT', 8000, 1, 65535)}"] if os.environ.get("PORT") else ["127.0.0.1:8000"]

# Threads, not more processes: a request mostly waits on the database, and webhooks are answered at once (202)
# with the evaluation done in the background, so a few processes with threads serve plenty.
worker_class = "gthread"
workers = _whole(os.environ, "WEB_CONCURRENCY", 2, 1, 64)
threads = _whole(os.environ, "GUNICORN_THREADS", 8, 1, 256)

# With gthread workers `timeout` bounds how long a worker's main loop may stop reporting, not one request: a
# deadlocked or wedged process is killed and replaced after 30 s instead of hanging forever. It exceeds GitHub's
# 10 s webhook budget (answered well within it), and each request's own waits are bounded by JIRA_TIMEOUT,
# GITHUB_TIMEOUT and the database's timeouts.
timeout = _whole(os.environ, "GUNICORN_TIMEOUT", 30, 1, 3600)
# After SIGTERM (a deploy, `docker stop`, systemd) requests in flight get this long; keep the supervisor's stop
# timeout above it (compose: stop_grace_period, systemd: TimeoutStopSec).
graceful_timeout = _whole(os.environ, "GUNICORN_GRACEFUL_TIMEOUT", 30, 1, 3600)
keepalive = _whole(os.environ, "GUNICORN_KEEPALIVE", 5, 0, 3600)

# Each worker builds its own app: the app starts background threads, which a fork would not carry over.
preload_app = False

# The heartbeat file is touched every second; on a container's disk-backed /tmp that can block a worker.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# gunicorn's control socket defaults to a fixed file under $HOME: a second server on the same machine would take
# it over, and a container's user has no home to write. Opt in with a path of its own.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def boot_problems(env: Mapping[str, str]) -> list[str]:
    """What stops Countersign from serving: every settings problem, else the database's state."""
    from gating.db import Database, DatabaseUnavailable, NotMigrated
    from gating.settings import Settings

    try:
        settings = Settings.from_env(env, check_keys=True)
    except SettingsError as exc:
        return list(exc.problems)
    database = Database(settings.database_url)
    try:
        database.require_migrated()
    except (DatabaseUnavailable, NotMigrated) as exc:
        return [str(exc)]
    finally:
        # Before any fork: no worker may inherit this process's connections.
        database.dispose()
    return []


def on_starting(server: Any) -> None:
    """In the master, before any worker: a bad setting or database is named once, on one line each, and gunicorn
    exits 1 — rather than every worker failing to boot with a traceback."""
    problems = boot_problems(os.environ)
    for problem in problems:
        server.log.error("boot.failed %s", problem)
    if problems:
        if server.pidfile is not None:
            server.pidfile.unlink()
        sys.exit(1)


def child_exit(_server: Any, worker: Any) -> None:
    """A worker process ended: in prometheus-client's multiprocess mode, its live gauges stop counting (its
    counters stay in the sums, as Prometheus expects of a counter)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
