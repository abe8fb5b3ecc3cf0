"""Bounded HTTP(S) load for the tests and the benchmark: clients that keep their connection alive
(as browsers and API clients do) or open a new one per request, each request recorded as
(started, seconds, status or the error's name, keepalive).

A keep-alive client sends every request on the connection it already has; when that fails (the
server closed it, a reset), the request counts as failed and the client opens a new connection
for the next one; it does not retry the failed request. That is how an idle connection closed
by a server reload shows up, which a new-connection-per-request client never sees.

    with Load("172.30.43.5", host="nmpi.test", path="/", clients=4, keepalive=True) as load:
        ...                      # the action under load
    load.failed()                # [] when every request got a 200

Only the given address is contacted; every client stops at the end of the `with` block or
after `limit_s` seconds, whichever comes first.
"""
import http.client
import ssl
import statistics
import threading
import time

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE  # the placeholders and the local CA: the tests check certificates elsewhere


class Load:
    def __init__(self, address, host, path="/", clients=4, keepalive=True, period=0.08, scheme="https",
                 port=None, timeout=5.0, limit_s=600.0, warmup_s=1.0, cooldown_s=1.0):
        self.address, self.host, self.path = address, host, path
        self.clients, self.keepalive, self.period = clients, keepalive, period
        self.scheme, self.port = scheme, port or (443 if scheme == "https" else 80)
        self.timeout, self.limit_s = timeout, limit_s
        self.warmup_s, self.cooldown_s = warmup_s, cooldown_s
        self.results, self._lock, self._stop = [], threading.Lock(), threading.Event()
        self._threads = []

    def _connect(self):
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.address, self.port, timeout=self.timeout, context=TLS)
        return http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)

    def _client(self, deadline):
        conn = None
        headers = {"Host": self.host}
        if not self.keepalive:
            headers["Connection"] = "close"
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            if conn is None:
                conn = self._connect()
            try:
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                outcome = resp.status
                if not self.keepalive or resp.will_close:
                    conn.close()
                    conn = None
            except Exception as exc:  # reset, closed, timeout: a failed request, not retried
                outcome = type(exc).__name__
                conn.close()
                conn = None
            with self._lock:
                self.results.append((started, time.monotonic() - started, outcome, self.keepalive))
            time.sleep(max(0.0, self.period - (time.monotonic() - started)))
        if conn is not None:
            conn.close()

    def __enter__(self):
        deadline = time.monotonic() + self.limit_s
        self._threads = [threading.Thread(target=self._client, args=(deadline,), daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        time.sleep(self.warmup_s)
        return self

    def __exit__(self, *exc):
        time.sleep(self.cooldown_s)
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return False

    def failed(self):
        return [r for r in self.results if r[2] != 200]

    def summary(self):
        times = sorted(r[1] for r in self.results)
        kind = "keep-alive" if self.keepalive else "new connection each"
        if len(times) < 2:
            return f"{len(self.results)} requests ({kind})"
        q = statistics.quantiles(times, n=100)
        return (f"{len(self.results)} requests ({kind}, {self.clients} clients), {len(self.failed())} failed, "
                f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms")


def latency(address, host, path="/", requests=200, keepalive=True, scheme="https", port=None):
    """Sequential requests from one client: (p50 ms, p99 ms, failures)."""
    load = Load(address, host, path=path, clients=1, keepalive=keepalive, period=0, scheme=scheme, port=port,
                warmup_s=0, cooldown_s=0)
    conn, times, failures = None, [], 0
    headers = {"Host": host} if keepalive else {"Host": host, "Connection": "close"}
    for _ in range(requests):
        started = time.perf_counter()
        if conn is None:
            conn = load._connect()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures += 1
            if not keepalive or resp.will_close:
                conn.close()
                conn = None
        except Exception:  # counted, then a new connection
            failures += 1
            conn.close()
            conn = None
        times.append(time.perf_counter() - started)
    if conn is not None:
        conn.close()
    q = statistics.quantiles(times, n=100)
    return q[49] * 1000, q[98] * 1000, failures
