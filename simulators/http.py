"""Plumbing shared by the simulators: a threaded HTTP server, a request log and fault switches."""

from __future__ import annotations

import io
import json
import socket
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
    at: float = 0.0  # time.time() when it was answered (for figures per minute)


@dataclass
class Fault:
    """One scripted misbehaviour, for the next `times` requests whose path contains `fragment`.

    `method` (e.g. "PATCH") and `when` (a test on the parsed JSON body) narrow the match. Made by
    the `Faults` methods below; `caught` is set once a request matched, `release()` ends a hold.
    """

    kind: str  # answer | lose | hang | hold | rendezvous
    fragment: str
    method: str | None = None
    times: int = 1
    when: Callable[[Any], bool] | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    count: int = 0
    caught: threading.Event = field(default_factory=threading.Event, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)
    matched: int = 0
    _arrived: int = field(default=0, repr=False)
    _condition: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def matches(self, method: str, path: str, body: Any) -> bool:
        if self.times <= 0 or self.fragment not in path:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.when is not None:
            try:
                return bool(self.when(body))
            except Exception:  # a body the test did not expect does not match
                return False
        return True

    def release(self) -> None:
        """Let a held request through (it is then applied and answered as usual)."""
        self.released.set()

    def wait_at_rendezvous(self) -> None:
        with self._condition:
            self._arrived += 1
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._arrived >= self.count, timeout=self.seconds)


@dataclass
class Faults:
    """Switches a test or benchmark flips to make a simulator slow or broken.

    `latency` delays every answer. `fail_next` queues statuses to answer with
    before the real handler runs (e.g. 500, 503, 429); `retry_after` is sent
    with 429/503. `down` answers 503 to everything until switched off.
    `hang` sleeps that many seconds before answering (to trigger client timeouts).

    Scripted faults, each for the requests whose path contains a fragment (and, if given, with that
    method and a JSON body `when` accepts), `times` times:

    - `answer(fragment, status, body=…, headers=…)`: answered instead of the server, so nothing is
      applied — a refusal, a rate limit, or a garbled 200.
    - `lose_response(fragment)`: the server applies the request, then the connection is dropped
      (or, with `status=502`, a gateway error replaces its answer): the client cannot tell it worked.
    - `hang_on(fragment, seconds)`: sleeps before handling (a read timeout for a client that waits
      less); the request is still applied when the sleep ends, as on a slow server.
    - `hold(fragment)`: the request waits, unapplied, until the test calls `release()` on the returned
      fault; `caught` tells the test it arrived.
    - `rendezvous(fragment, count)`: matching requests wait until `count` of them have arrived (at
      most `timeout` seconds), then go on together: a race made to happen.
    """

    latency: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    retry_after: int | None = None
    down: bool = False
    hang: float = 0.0
    path_failures: dict[str, list[int]] = field(default_factory=dict)
    scripted: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_path(self, fragment: str, *statuses: int) -> None:
        """Answer the next requests whose path contains `fragment` with `statuses`, in order."""
        with self.lock:
            self.path_failures.setdefault(fragment, []).extend(statuses)

    def answer(
        self,
        fragment: str,
        status: int,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        times: int = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> Fault:
        """Answer `status` with `body` (a dict is sent as JSON, a str as it is) instead of handling the request."""
        return self._add(Fault("answer", fragment, method, times, when, status, body, dict(headers or {})))

    def lose_response(
        self,
        fragment: str,
        *,
        status: int | None = None,
        method: str | None = None,
        times: int = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> Fault:
        """Apply the request, then drop the connection (`status` None) or answer `status` instead."""
        return self._add(Fault("lose", fragment, method, times, when, status))

    def hang_on(self, fragment: str, seconds: float, *, method: str | None = None, times: int = 1) -> Fault:
        """Sleep `seconds` before handling the request (it is applied afterwards)."""
        return self._add(Fault("hang", fragment, method, times, seconds=seconds))

    def hold(
        self,
        fragment: str,
        *,
        method: str | None = None,
        times: int = 1,
        when: Callable[[Any], bool] | None = None,
        timeout: float = 60.0,
    ) -> Fault:
        """Keep the request waiting, unapplied, until `release()` (or `timeout` seconds)."""
        return self._add(Fault("hold", fragment, method, times, when, seconds=timeout))

    def rendezvous(self, fragment: str, count: int, *, method: str | None = None, timeout: float = 10.0) -> Fault:
        """Hold matching requests until `count` of them are waiting (or `timeout` passed), then let all go."""
        return self._add(Fault("rendezvous", fragment, method, count, seconds=timeout, count=count))

    def _add(self, fault: Fault) -> Fault:
        with self.lock:
            self.scripted.append(fault)
        return fault

    def scripted_for(self, method: str, path: str, body: Any) -> Fault | None:
        """The first scripted fault this request triggers (counted as used), if any."""
        with self.lock:
            for fault in self.scripted:
                if fault.matches(method, path, body):
                    fault.times -= 1
                    fault.matched += 1
                    fault.caught.set()
                    return fault
        return None

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.fail_next.clear()
            self.retry_after = None
            self.down = False
            self.hang = 0.0
            self.path_failures.clear()
            for fault in self.scripted:
                fault.release()
            self.scripted.clear()

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
        scripted = self.faults.scripted_for(request.method, request.path, _json_or_none(raw))
        if scripted is not None and scripted.kind == "answer":
            response = _answer(scripted.status or 500, scripted.body, scripted.headers)
            result = response(environ, recording_start_response)
            self._record(request, raw, status_holder.get("status", 0))
            return result
        if scripted is not None and scripted.kind == "hang":
            time.sleep(scripted.seconds)
        elif scripted is not None and scripted.kind == "hold":
            scripted.released.wait(timeout=scripted.seconds)
        elif scripted is not None and scripted.kind == "rendezvous":
            scripted.wait_at_rendezvous()
        elif scripted is not None and scripted.kind == "lose":
            return self._lose(request, raw, environ, start_response, scripted)
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

    def _lose(
        self, request: Request, raw: bytes, environ: dict[str, Any], start_response: Callable[..., Any], fault: Fault
    ) -> Any:
        """Apply the request in full, then keep its answer from the client."""
        applied: dict[str, int] = {}

        def keep_status(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
            applied["status"] = int(status.split()[0])
            return lambda _data: None

        result = self.app(environ, keep_status)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if fault.status is not None:
            self._record(request, raw, fault.status)
            body = self.fault_body(fault.status)
            return _answer(fault.status, body, {})(environ, start_response)
        self._record(request, raw, 0)  # 0: the client got no answer at all
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            # The server's answer never leaves: the client sees the connection close on it.
            connection.shutdown(socket.SHUT_RDWR)
        start_response("500 Connection Dropped", [("Content-Length", "0")])
        return []

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
            at=time.time(),
        )
        with self._lock:
            self.requests.append(entry)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _answer(status: int, body: Any, headers: dict[str, str]) -> Response:
    if isinstance(body, (dict, list)):
        response = Response(json.dumps(body), status=status, mimetype="application/json")
    else:
        response = Response(body or "", status=status, mimetype="application/json")
    for name, value in headers.items():
        response.headers[name] = value
    return response


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


class Served:
    """A simulator's start() and stop(): its `wsgi` app served on 127.0.0.1, its `url` set while it is."""

    wsgi: Callable[..., Any]
    url: str | None = None
    _handle: ServerHandle | None = None

    def start(self, port: int = 0) -> str:
        self._handle = serve(self.wsgi, port)
        self.url = self._handle.url
        return self.url

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None
