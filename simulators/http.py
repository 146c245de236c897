"""Plumbing shared by the simulators: a threaded HTTP server, a request log and fault switches."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response


@dataclass(frozen=True)
class RecordedRequest:
    """One request a simulator answered, as the client sent it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, raw text, or None when empty
    status: int


@dataclass
class Faults:
    """Switches a test or benchmark flips to make a simulator slow or broken.

    `latency` delays every answer. `fail_next` queues statuses to answer with
    before the real handler runs (e.g. 500, 503, 429); `retry_after` is sent
    with 429/503. `down` answers 503 to everything until switched off.
    `hang` sleeps that many seconds before answering (to trigger client timeouts).
    """

    latency: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    retry_after: int | None = None
    down: bool = False
    hang: float = 0.0
    path_failures: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_path(self, fragment: str, *statuses: int) -> None:
        """Answer the next requests whose path contains `fragment` with `statuses`, in order."""
        with self.lock:
            self.path_failures.setdefault(fragment, []).extend(statuses)

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.fail_next.clear()
            self.retry_after = None
            self.down = False
            self.hang = 0.0
            self.path_failures.clear()

    def take(self, path: str = "") -> int | None:
        with self.lock:
            if self.down:
                return 503
            if self.fail_next:
                return self.fail_next.pop(0)
            for fragment, statuses in self.path_failures.items():
                if fragment in path and statuses:
                    return statuses.pop(0)
        return None


class RecordingMiddleware:
    """Wraps a WSGI app: applies faults, then logs each request with its answer's status."""

    def __init__(self, app: Callable[..., Any], faults: Faults, fault_body: Callable[[int], dict[str, Any]]) -> None:
        self.app = app
        self.faults = faults
        self.fault_body = fault_body
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        raw = request.get_data(cache=True)
        # Reading the body consumed the input stream: hand the app a fresh one with the same bytes.
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        if self.faults.hang:
            time.sleep(self.faults.hang)
        if self.faults.latency:
            time.sleep(self.faults.latency)
        status_holder: dict[str, int] = {}

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            status_holder["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        if request.path.startswith("/_sim/"):
            # The control and state pages are for people and tests: no faults, no log.
            return self.app(environ, start_response)
        failure = self.faults.take(request.path)
        if failure is not None:
            response = Response(json.dumps(self.fault_body(failure)), status=failure, mimetype="application/json")
            if failure in (429, 503) and self.faults.retry_after is not None:
                response.headers["Retry-After"] = str(self.faults.retry_after)
            result = response(environ, recording_start_response)
        else:
            result = self.app(environ, recording_start_response)
        self._record(request, raw, status_holder.get("status", 0))
        return result

    def _record(self, request: Request, raw: bytes, status: int) -> None:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        entry = RecordedRequest(
            method=request.method,
            path=request.path,
            query=parse_qs(request.query_string.decode(), keep_blank_values=True),
            headers={k: v for k, v in request.headers.items()},
            body=body,
            status=status,
        )
        with self._lock:
            self.requests.append(entry)


class ServerHandle:
    """A WSGI app served on 127.0.0.1 from a daemon thread."""

    def __init__(self, app: Callable[..., Any], port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05), name=f"sim-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(app: Callable[..., Any], port: int = 0) -> ServerHandle:
    """Start serving `app` on 127.0.0.1 (an ephemeral port by default) and return its handle."""
    return ServerHandle(app, port)
