"""The shared API client against the local test servers: retries, backoff, 429 waits, pagination, errors."""
from __future__ import annotations

import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.sciops.platform.plugins.module_utils import http_api
from ansible_collections.sciops.platform.plugins.module_utils.digitalocean import DigitalOceanClient
from ansible_collections.sciops.platform.plugins.module_utils.godaddy import GoDaddyClient, plan_record_set, parse_value
from ansible_collections.sciops.platform.plugins.module_utils.http_api import (
    ApiConnectionError, ApiError, ApiTimeout, Response)


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


@pytest.fixture
def fake_time():
    return FakeTime()


def do_client(server, fake_time, token="test-token", timeout=60):
    return DigitalOceanClient(server.url, token, timeout=timeout, sleep=fake_time.sleep, clock=fake_time.clock)


def gd_client(server, fake_time, key="test-key", secret="test-secret", timeout=60):
    return GoDaddyClient(server.url, key, secret, timeout=timeout, sleep=fake_time.sleep, clock=fake_time.clock)


def test_digitalocean_429_waits_for_retry_after(digitalocean, fake_time):
    digitalocean.inject("429", method="GET", path="^/v2/droplets$", wait=7)
    client = do_client(digitalocean, fake_time)
    assert client.list_droplets() == []
    assert fake_time.sleeps == [7.0]
    assert len(digitalocean.calls("GET")) == 2


def test_digitalocean_ratelimit_reset_used_without_retry_after():
    client = DigitalOceanClient("http://127.0.0.1:9", "t", wall_clock=lambda: 1000.0)
    assert client.retry_after(Response(429, {"ratelimit-reset": "1012"}, None)) == 12.0
    assert client.retry_after(Response(429, {"Retry-After": "3"}, None)) == 3.0
    assert client.retry_after(Response(429, {}, None)) is None


def test_godaddy_429_waits_for_retry_after_sec(godaddy, fake_time):
    godaddy.inject("429", method="GET", wait=4, times=2)
    client = gd_client(godaddy, fake_time)
    records = client.list_records("example.org", "A", "@")
    assert [r["data"] for r in records] == ["203.0.113.1"]
    assert fake_time.sleeps == [4.0, 4.0]
    assert len(godaddy.calls()) == 3


def test_5xx_retried_with_capped_exponential_backoff(digitalocean, fake_time):
    digitalocean.inject("500", method="GET", times=6)
    client = do_client(digitalocean, fake_time)
    client.backoff_cap = 4.0
    client.list_droplets()
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(digitalocean.calls()) == 7


def test_retries_bounded_by_timeout(digitalocean, fake_time):
    digitalocean.inject("500", method="GET", times=100)
    client = do_client(digitalocean, fake_time, timeout=10)
    with pytest.raises(ApiTimeout) as exc:
        client.list_droplets()
    assert "HTTP 500" in str(exc.value) and "timeout of 10s" in str(exc.value)
    assert sum(fake_time.sleeps) <= 10


def test_429_beyond_timeout_fails_at_once(godaddy, fake_time):
    godaddy.inject("429", wait=120)
    client = gd_client(godaddy, fake_time, timeout=30)
    with pytest.raises(ApiTimeout) as exc:
        client.list_records("example.org")
    assert "asks to wait 120s" in str(exc.value)
    assert fake_time.sleeps == []
    assert len(godaddy.calls()) == 1


def test_connection_error_retried_for_get(digitalocean, fake_time):
    digitalocean.inject("drop", method="GET")
    client = do_client(digitalocean, fake_time)
    assert client.list_droplets() == []
    assert len(digitalocean.calls()) == 2 and fake_time.sleeps == [0.5]


def test_lost_create_response_not_retried(digitalocean, fake_time):
    digitalocean.inject("lost", method="POST")
    client = do_client(digitalocean, fake_time)
    with pytest.raises(ApiConnectionError):
        client.create_droplet({"name": "web-1", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64"})
    assert len(digitalocean.calls("POST")) == 1
    assert len(digitalocean.droplets) == 1  # applied by the provider, response lost


def test_pagination_follows_links(digitalocean, fake_time):
    for i in range(450):
        digitalocean.add_droplet("node-%03d" % i, tags=["even"] if i % 2 == 0 else [])
    client = do_client(digitalocean, fake_time)
    droplets = client.list_droplets()
    assert len(droplets) == 450 and len({d["id"] for d in droplets}) == 450
    gets = digitalocean.calls("GET")
    assert len(gets) == 3 and all(c.query["per_page"] == "200" for c in gets)
    digitalocean.reset_log()
    assert len(client.list_droplets(tag_name="even")) == 225
    assert len(digitalocean.calls()) == 2


def test_godaddy_error_mapping_with_fields(godaddy, fake_time):
    client = gd_client(godaddy, fake_time)
    with pytest.raises(ApiError) as exc:
        client.replace_set("example.org", "TXT", "x", [{"data": "v", "ttl": 300}])
    msg = str(exc.value)
    assert msg.startswith("GoDaddy API error: HTTP 422 INVALID_BODY")
    assert "field records[0].ttl: UNEXPECTED_VALUE" in msg
    assert exc.value.status == 422 and exc.value.code == "INVALID_BODY"


def test_godaddy_access_denied_hint(godaddy, fake_time):
    godaddy.access_denied = True
    client = gd_client(godaddy, fake_time)
    with pytest.raises(ApiError) as exc:
        client.list_records("example.org")
    assert "HTTP 403 ACCESS_DENIED" in str(exc.value)
    assert "OTE sandbox" in str(exc.value) and "https://api.ote-godaddy.com" in str(exc.value)


def test_digitalocean_error_mapping_and_no_token(digitalocean, fake_time):
    client = do_client(digitalocean, fake_time, token="dop_v1_supersecret")
    with pytest.raises(ApiError) as exc:
        client.list_droplets()
    assert str(exc.value).startswith("DigitalOcean API error: HTTP 401 unauthorized: Unable to authenticate you")
    assert "supersecret" not in str(exc.value)


def test_secrets_redacted_even_when_echoed():
    client = GoDaddyClient("http://127.0.0.1:9", "key123456", "secret98765")
    err = client._error(400, {"code": "BAD", "message": "bad key key123456:secret98765"}, "GET", "/v1/x")
    assert "key123456" not in str(err) and "secret98765" not in str(err) and "********" in str(err)


def test_plan_record_set_modes():
    cur = [{"type": "TXT", "name": "_acme", "data": "one", "ttl": 600}]
    two = [parse_value("TXT", "two", "_acme", 600)]
    changed, target = plan_record_set("TXT", cur, two, 600, "present", solo=False)
    assert changed and sorted(r["data"] for r in target) == ["one", "two"]
    changed, target = plan_record_set("TXT", cur, two, 600, "present", solo=True)
    assert changed and [r["data"] for r in target] == ["two"]
    changed, target = plan_record_set("TXT", cur, [parse_value("TXT", "one", "_acme", 600)], 600, "present", solo=False)
    assert not changed
    changed, target = plan_record_set("TXT", cur, [parse_value("TXT", "one", "_acme", 600)], 600, "absent", solo=True)
    assert changed and target == []
    changed, target = plan_record_set("TXT", cur, two, 600, "absent", solo=True)
    assert not changed


def test_parse_value_formats():
    assert parse_value("MX", "10 mx.example.org", "@", 600) == {"data": "mx.example.org", "priority": 10, "ttl": 600}
    srv = parse_value("SRV", "10 5 5060 sip.example.org", "_sip._tcp", 600)
    assert srv["port"] == 5060 and srv["service"] == "_sip" and srv["protocol"] == "_tcp"
    with pytest.raises(ValueError):
        parse_value("MX", "mx.example.org", "@", 600)


def test_servers_refuse_requests_outside_the_contract(digitalocean, godaddy, fake_time):
    client = do_client(digitalocean, fake_time)
    with pytest.raises(ApiError) as exc:
        client.request("GET", "/v2/droplets", query={"per_page": 500})
    assert exc.value.status == 422 and "per_page=500 is above 200" in str(exc.value)
    gd = gd_client(godaddy, fake_time)
    with pytest.raises(ApiError) as exc:
        gd.request("PUT", "/v1/domains/example.org/records/SPF/x", body=[{"data": 5}])
    assert "type='SPF' is not one of" in str(exc.value) and "is not of type 'string'" in str(exc.value)
    assert len(digitalocean.violations) == 1 and len(godaddy.violations) == 1
    digitalocean.violations.clear()  # expected here; the fixtures fail any other test that has one
    godaddy.violations.clear()


# --- the standard-library path (no Ansible: the Let's Encrypt hook on a node) ---------------
@pytest.fixture
def stdlib(monkeypatch):
    monkeypatch.setattr(http_api, "open_url", None)
    calls = []
    real = http_api.stdlib_open_url

    def spy(*args, **kwargs):
        calls.append(kwargs.get("method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(http_api, "stdlib_open_url", spy)
    return calls


def test_stdlib_path_same_semantics(godaddy, fake_time, stdlib):
    client = gd_client(godaddy, fake_time)
    godaddy.inject("429", method="GET", wait=4)
    godaddy.inject("drop", method="PUT")
    assert [r["data"] for r in client.list_records("example.org", "A", "@")] == ["203.0.113.1"]
    client.replace_set("example.org", "TXT", "_acme-challenge", [{"data": "tok", "ttl": 600}])
    client.delete_set("example.org", "TXT", "_acme-challenge")
    assert fake_time.sleeps == [4.0, 0.5]
    assert stdlib == ["GET", "GET", "PUT", "PUT", "DELETE"]
    with pytest.raises(ApiError) as exc:
        client.replace_set("example.org", "TXT", "x", [{"data": "v", "ttl": 300}])
    assert str(exc.value).startswith("GoDaddy API error: HTTP 422 INVALID_BODY") and exc.value.status == 422
    with pytest.raises(ApiError) as exc:
        gd_client(godaddy, fake_time, secret="s3cr3t-value").list_records("example.org")
    assert exc.value.status == 401 and "s3cr3t-value" not in str(exc.value)


def test_stdlib_path_does_not_follow_redirects(fake_time, stdlib):
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = GoDaddyClient("http://127.0.0.1:%d" % httpd.server_address[1], "k", "s", sleep=fake_time.sleep,
                               clock=fake_time.clock)
        with pytest.raises(ApiError) as exc:
            client.list_records("example.org")
        assert exc.value.status == 302 and "HTTP 302" in str(exc.value)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_stdlib_path_validates_certificates(godaddy, tmp_path, stdlib):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    godaddy.httpd.socket = context.wrap_socket(godaddy.httpd.socket, server_side=True)
    url = godaddy.url.replace("http://", "https://")
    strict = GoDaddyClient(url, "test-key", "test-secret", timeout=10)
    with pytest.raises(ApiConnectionError) as exc:
        strict.request("GET", "/v1/domains/example.org/records", retry_unsafe=False)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value)
    relaxed = GoDaddyClient(url, "test-key", "test-secret", timeout=10, validate_certs=False)
    assert len(relaxed.list_records("example.org")) == 3
