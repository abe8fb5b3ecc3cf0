"""The test servers check every request against the specification, also when a fault is injected,
and every reply they send, injected faults included, against the specification's response."""
from __future__ import annotations

import http.client
import json

import pytest

from tests.servers.base import Reply

GD_AUTH = {"Authorization": "sso-key test-key:test-secret"}
DO_AUTH = {"Authorization": "Bearer test-token"}


def send(server, method, path, body=None, headers=None):
    """One raw request: (status, parsed body) or (None, None) when the server closes the connection."""
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=dict(headers or {}, **({"Content-Type": "application/json"} if data else {})))
        resp = conn.getresponse()
        raw = resp.read()
    except (http.client.HTTPException, ConnectionError):
        return None, None
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode()


@pytest.mark.parametrize("kind", ["429", "500", "slow", "lost", "drop", "reply"])
def test_request_checked_also_when_a_fault_is_injected(digitalocean, godaddy, kind):
    digitalocean.inject(kind, wait=0, status=503, body={"id": "service_unavailable", "message": "try later"})
    send(digitalocean, "GET", "/v2/droplets?per_page=500", headers=DO_AUTH)
    assert len(digitalocean.violations) == 1 and "per_page=500 is above 200" in digitalocean.violations[0], digitalocean.violations
    godaddy.inject(kind, wait=0, status=500, body={"code": "INTERNAL_SERVER_ERROR", "message": "later"})
    send(godaddy, "PUT", "/v1/domains/example.org/records/CAA/x", [{"data": '0 issue "ca.example"', "ttl": 600}], GD_AUTH)
    assert len(godaddy.violations) == 1 and "type='CAA' is not one of" in godaddy.violations[0], godaddy.violations
    assert godaddy.records("example.org", "CAA") == []
    digitalocean.violations.clear()
    godaddy.violations.clear()


ROUTES = {
    "godaddy": [("GET", "/v1/domains/example.org/records", None), ("GET", "/v1/domains/example.org/records/A", None),
                ("GET", "/v1/domains/example.org/records/A/@", None),
                ("PUT", "/v1/domains/example.org/records/TXT/t", [{"data": "v", "ttl": 600}]),
                ("PUT", "/v1/domains/example.org/records/NS", [{"name": "@", "data": "ns1.example.net", "ttl": 3600}]),
                ("DELETE", "/v1/domains/example.org/records/A/@", None)],
    "digitalocean": [("GET", "/v2/droplets?per_page=200", None), ("GET", "/v2/droplets/3164444", None),
                     ("POST", "/v2/droplets", {"name": "web-1", "region": "fra1", "size": "s-1vcpu-1gb", "image": "debian-12-x64"}),
                     ("DELETE", "/v2/droplets/3164444", None), ("DELETE", "/v2/droplets?tag_name=env-test", None)],
}


@pytest.mark.parametrize("kind", ["429", "500"])
def test_injected_faults_are_in_the_providers_shape(digitalocean, godaddy, kind):
    for server, headers in ((godaddy, GD_AUTH), (digitalocean, DO_AUTH)):
        for method, path, body in ROUTES[server.spec_name]:
            server.inject(kind, wait=2)
            status, reply = send(server, method, path, body, headers)
            assert status == int(kind), (method, path)
            if server is godaddy:
                assert reply["code"] == ("TOO_MANY_REQUESTS" if kind == "429" else "INTERNAL_SERVER_ERROR"), reply
                assert reply["message"] and (reply.get("retryAfterSec") == 2 if kind == "429" else "retryAfterSec" not in reply)
            else:
                assert reply["id"] == ("too_many_requests" if kind == "429" else "server_error"), reply
                assert reply["message"] and reply["request_id"], reply
        assert server.violations == [], server.violations
        assert all(c.fault == kind for c in server.calls())


def test_fault_replies_are_checked_against_the_spec(digitalocean, godaddy):
    godaddy.rate_limited = lambda wait: Reply(429, {"message": "slow down"})  # neither code nor retryAfterSec
    godaddy.inject("429")
    assert send(godaddy, "GET", "/v1/domains/example.org/records", headers=GD_AUTH)[0] == 429
    assert len(godaddy.violations) == 1, godaddy.violations
    assert godaddy.violations[0].startswith("response GET /v1/domains/example.org/records 429: ")
    assert "'retryAfterSec' is a required property" in godaddy.violations[0]
    assert "'code' is a required property" in godaddy.violations[0]
    digitalocean.error = lambda status, code, message, fields=None: Reply(status, {"error": message})
    digitalocean.inject("500")
    assert send(digitalocean, "GET", "/v2/droplets", headers=DO_AUTH)[0] == 500
    assert len(digitalocean.violations) == 1 and "'id' is a required property" in digitalocean.violations[0], digitalocean.violations
    godaddy.violations.clear()
    digitalocean.violations.clear()


def test_status_outside_the_spec_is_a_violation_unless_it_has_a_default(digitalocean, godaddy):
    godaddy.inject("reply", status=503, body={"code": "UNAVAILABLE", "message": "later"})
    assert send(godaddy, "GET", "/v1/domains/example.org/records/A/@", headers=GD_AUTH)[0] == 503
    assert godaddy.violations == ["response GET /v1/domains/example.org/records/A/@ 503: "
                                  "status 503 is not documented for GET /v1/domains/{domain}/records/{type}/{name}"]
    godaddy.violations.clear()
    # DigitalOcean documents a default response ({id, message}) on every route
    digitalocean.inject("reply", status=503, body={"id": "service_unavailable", "message": "later"})
    assert send(digitalocean, "GET", "/v2/droplets", headers=DO_AUTH)[0] == 503
    assert digitalocean.violations == []
    digitalocean.inject("reply", status=503, body="<html>Service Unavailable</html>", content_type="text/html")
    assert send(digitalocean, "GET", "/v2/droplets", headers=DO_AUTH) == (503, "<html>Service Unavailable</html>")
    assert len(digitalocean.violations) == 1 and "not JSON" in digitalocean.violations[0], digitalocean.violations
    digitalocean.violations.clear()


def test_lost_reply_is_checked_too(digitalocean):
    digitalocean.inject("lost", method="POST")
    assert send(digitalocean, "POST", "/v2/droplets", {"name": "web-1", "region": "fra1", "size": "s-1vcpu-1gb",
                                                       "image": "debian-12-x64"}, DO_AUTH) == (None, None)
    assert len(digitalocean.droplets) == 1 and digitalocean.violations == []
    assert digitalocean.calls("POST")[0].status == 202
