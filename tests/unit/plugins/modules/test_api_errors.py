"""Error replies outside the providers' error shape (a proxy's HTML page, plain text, foreign JSON):
the message carries a short, redacted excerpt of the body (plugins/module_utils/http_api.py)."""
from __future__ import annotations

import pytest

from ansible_collections.sciops.platform.plugins.module_utils.digitalocean import DigitalOceanClient
from ansible_collections.sciops.platform.plugins.module_utils.godaddy import GoDaddyClient
from ansible_collections.sciops.platform.plugins.module_utils.http_api import ApiError

HTML = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n"
        "<p>upstream said: Authorization: sso-key test-key:test-secret; Bearer dop_v1_0123456789abcdef</p>\r\n"
        + "<!-- a padding line of the proxy's error page -->\r\n" * 40 + "</body>\r\n</html>\r\n")
PLAIN = "upstream connect error or disconnect/reset before headers.\n  token=test-token   reset reason: overflow\n"


def no_secret(text, *secrets):
    for secret in ("test-key", "test-secret", "test-token", "dop_v1_0123456789abcdef") + secrets:
        assert secret not in text, text


def test_excerpt_is_short_collapsed_and_redacted():
    client = GoDaddyClient("http://127.0.0.1:9", "test-key", "test-secret")
    err = client._error(502, {"raw": HTML}, "PUT", "/v1/domains/example.org/records/TXT/x")
    msg = str(err)
    assert msg.startswith("GoDaddy API error: HTTP 502, body not in GoDaddy's error format: "
                          "'<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway</h1>"), msg
    assert msg.endswith(" [PUT /v1/domains/example.org/records/TXT/x]"), msg
    assert "\n" not in msg and "\r" not in msg and "  " not in msg
    assert "sso-key ********" in msg and "Bearer ********" in msg
    no_secret(msg)
    excerpt = msg.split("format: ", 1)[1].rsplit(" [", 1)[0]
    assert len(excerpt) <= 2 + 200 + 3, excerpt  # quotes, 200 characters, "..."


def test_excerpt_of_json_in_a_foreign_shape():
    client = DigitalOceanClient("http://127.0.0.1:9", "test-token")
    msg = str(client._error(504, {"error": "gateway timeout", "auth": "Bearer test-token"}, "GET", "/v2/droplets"))
    assert msg == ("DigitalOcean API error: HTTP 504, body not in DigitalOcean's error format: "
                   "'{\"error\": \"gateway timeout\", \"auth\": \"Bearer ********\"}' [GET /v2/droplets]"), msg
    msg = str(client._error(502, ["not", "an", "object"], "GET", "/v2/droplets"))
    assert "body not in DigitalOcean's error format: '[\"not\", \"an\", \"object\"]'" in msg, msg
    # the provider's own shape is shown as before, without an excerpt
    msg = str(client._error(404, {"id": "not_found", "message": "gone"}, "GET", "/v2/droplets/1"))
    assert msg == "DigitalOcean API error: HTTP 404 not_found: gone [GET /v2/droplets/1]"
    # no body at all: the status alone
    assert str(client._error(502, None, "GET", "/v2/droplets")) == "DigitalOcean API error: HTTP 502, no body [GET /v2/droplets]"


def test_html_502_from_the_godaddy_server(godaddy):
    godaddy.inject("reply", method="PUT", status=502, body=HTML, content_type="text/html")
    client = GoDaddyClient(godaddy.url, "test-key", "test-secret", timeout=10)
    with pytest.raises(ApiError) as exc:
        client.request("PUT", "/v1/domains/example.org/records/TXT/x", body=[{"data": "v", "ttl": 600}], retry_unsafe=False)
    msg = str(exc.value)
    assert msg.startswith("GoDaddy API error: HTTP 502, body not in GoDaddy's error format: '<html> <head><title>502 Bad Gateway"), msg
    assert exc.value.status == 502
    no_secret(msg)
    # GoDaddy's specification documents no 502: the test server records it (and the request was valid)
    assert godaddy.violations == ["response PUT /v1/domains/example.org/records/TXT/x 502: "
                                  "status 502 is not documented for PUT /v1/domains/{domain}/records/{type}/{name}"]
    godaddy.violations.clear()


def test_plain_text_502_through_the_droplet_module(digitalocean, playbook):
    digitalocean.inject("reply", method="POST", status=502, body=PLAIN, content_type="text/plain", times=3)
    task = {"name": "droplet", "sciops.platform.digitalocean_droplet": {
        "base_url": digitalocean.url, "timeout": 20, "name": "web-1", "size": "s-1vcpu-1gb", "region": "fra1",
        "image": "debian-12-x64"}}
    r = playbook([task], env={"DIGITALOCEAN_TOKEN": "test-token"}, extra_args=["-vvv"])
    assert r.rc != 0, r
    msg = r.last["msg"]
    assert msg.startswith("DigitalOcean API error: HTTP 502, body not in DigitalOcean's error format: "
                          "'upstream connect error or disconnect/reset before headers. token=******** reset reason: overflow'"
                          " [POST /v2/droplets]"), msg
    no_secret(r.stdout + r.stderr)
    assert len(digitalocean.calls("POST")) == 3 and digitalocean.droplets == {}
    # DigitalOcean's default response is JSON ({id, message}): a text/plain body breaks it
    assert len(digitalocean.violations) == 3 and all("not JSON" in v for v in digitalocean.violations), digitalocean.violations
    digitalocean.violations.clear()
