"""Threaded local HTTP test server with a request log, fault injection and spec validation."""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict
    body: object
    headers: dict
    status: int | None = None
    fault: str | None = None
    raw: bytes = b""     # the body as received (what a webhook's signature covers)

    @property
    def write(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass
class Fault:
    kind: str            # "429", "500", "slow", "lost" (applied, then the connection is closed), "drop" (closed before),
    #                      "reply" (this status and body instead of the route's reply: a proxy's page, another status)
    method: str | None = None
    path: str | None = None  # regex on the path
    times: int = 1
    wait: float = 1.0    # 429: seconds the provider asks to wait; slow: delay
    used: int = 0
    status: int = 502    # reply: the status
    body: object = None  # reply: a str is sent as it is (with content_type), anything else as JSON
    content_type: str = "application/json"

    def matches(self, method, path):
        return (self.method is None or self.method == method) and (self.path is None or re.search(self.path, path))


@dataclass
class NotJson:
    """A reply body that is not JSON (for the response check)."""
    content_type: str
    text: object


@dataclass
class Reply:
    status: int
    body: object = None       # JSON, or a str sent as it is when content_type is not JSON
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


class TestServer:
    """Subclasses implement ``authorized``, ``error``, ``rate_limited`` and ``dispatch``."""

    spec = None

    def __init__(self):
        self.lock = threading.RLock()
        self.log: list[Call] = []
        self.faults: list[Fault] = []
        self.violations: list[str] = []
        self.httpd = None
        self.echo = None  # callable(line): one line per API call (the standalone servers print them)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, host="127.0.0.1", port=0):
        """Serve in a background thread on host:port (default: an ephemeral port on loopback)."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                server._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def url(self):
        host = self.httpd.server_address[0]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return "http://%s:%d" % (host, self.httpd.server_address[1])

    # --- test API ------------------------------------------------------------------------
    def inject(self, kind, method=None, path=None, times=1, wait=1.0, status=502, body=None, content_type="application/json"):
        """Answer the next ``times`` matching requests with a fault (see Fault). The request is still
        checked against the specification, and so is the fault's reply."""
        with self.lock:
            self.faults.append(Fault(kind, method, path, times, wait, status=status, body=body, content_type=content_type))

    def calls(self, method=None, path=None) -> list[Call]:
        with self.lock:
            return [c for c in self.log if (method is None or c.method == method) and (path is None or re.search(path, c.path))]

    def writes(self) -> list[Call]:
        return [c for c in self.calls() if c.write]

    def reset_log(self):
        with self.lock:
            self.log.clear()

    # --- hooks ---------------------------------------------------------------------------
    def authorized(self, headers) -> Reply | None:
        return None

    def public(self, method, path) -> bool:
        """Routes that authenticate by other means (a webhook's signature): no credentials asked."""
        return False

    def error(self, status, code, message, fields=None) -> Reply:
        raise NotImplementedError

    def server_error(self) -> Reply:
        """The injected 500, in the provider's shape."""
        raise NotImplementedError

    def rate_limited(self, wait) -> Reply:
        raise NotImplementedError

    def dispatch(self, call: Call, template: str, params: dict) -> Reply:
        raise NotImplementedError

    def decorate(self, reply: Reply) -> Reply:
        return reply

    # --- request handling ----------------------------------------------------------------
    def _fault(self, method, path):
        with self.lock:
            for fault in self.faults:
                if fault.used < fault.times and fault.matches(method, path):
                    fault.used += 1
                    return fault
        return None

    def _serve(self, handler):
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        call = Call(handler.command, parts.path, dict(parse_qsl(parts.query)), body,
                    {k.lower(): v for k, v in handler.headers.items()}, raw=raw)
        with self.lock:
            self.log.append(call)
            seen = len(self.violations)
        fault = self._fault(call.method, call.path)
        if fault is not None:
            call.fault = fault.kind
        if fault is not None and fault.kind in ("drop", "429", "500", "reply"):
            # The request is checked against the contract all the same (and not applied).
            self._check(call, bad_json)
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.wait)
        if fault is not None and fault.kind == "429":
            reply = self.rate_limited(fault.wait)
        elif fault is not None and fault.kind == "500":
            reply = self.server_error()
        elif fault is not None and fault.kind == "reply":
            reply = Reply(fault.status, fault.body, content_type=fault.content_type)
        else:
            reply = self._process(call, bad_json)
        reply = self.decorate(reply)
        call.status = reply.status
        self._validate_response(call, reply)
        if fault is not None and fault.kind == "lost":
            handler.close_connection = True
            return
        if self.echo is not None:
            with self.lock:
                new = self.violations[seen:]
            notes = " (fault %s)" % call.fault if call.fault else ""
            notes += "".join(" CONTRACT VIOLATION: " + v for v in new)
            self.echo("%s %s %s %s%s" % (handler.client_address[0], call.method, handler.path, reply.status, notes))
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, str) and reply.content_type != "application/json":
            data = reply.body.encode()
        else:
            data = json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        for key, value in reply.headers.items():
            handler.send_header(key, str(value))
        if data:
            handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data:
            handler.wfile.write(data)

    spec_name = ""

    def _check(self, call, bad_json) -> Reply | None:
        """Authentication and the contract: the refusal to send, or None when the request may be
        applied (``call._template`` is then its route). A request outside the contract is recorded
        as a violation."""
        denied = None if self.public(call.method, call.path) else self.authorized(call.headers)
        if denied is not None:
            try:
                call._template = self.spec.match(call.method, call.path)[0]  # the 401/403 reply is checked too
            except LookupError:
                pass
            return denied
        if bad_json:
            return self.error(400, "bad_request", "Request body is not JSON")
        try:
            template, params, errors = self.spec.validate_request(call.method, call.path, call.query, call.body)
        except LookupError as exc:
            status, message = exc.args
            with self.lock:
                self.violations.append("request: " + message)
            return self.error(status, "not_found" if status == 404 else "method_not_allowed", message)
        if errors:
            with self.lock:
                self.violations.append("request %s %s: %s" % (call.method, call.path, "; ".join(errors)))
            return self.error(422, "unprocessable_entity", "Request does not match the API contract: " + "; ".join(errors),
                              fields=errors)
        call._template = template
        call._params = params
        return None

    def _process(self, call, bad_json) -> Reply:
        refused = self._check(call, bad_json)
        if refused is not None:
            return refused
        with self.lock:
            return self.dispatch(call, call._template, call._params)

    def _validate_response(self, call, reply):
        template = getattr(call, "_template", None)
        if template is None:
            return
        body = reply.body
        if reply.content_type != "application/json":
            body = NotJson(reply.content_type, body)
        errors = self.spec.validate_response(call.method, template, reply.status, body)
        if errors:
            with self.lock:
                self.violations.append("response %s %s %s: %s" % (call.method, call.path, reply.status, "; ".join(errors[:3])))
