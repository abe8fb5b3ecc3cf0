"""tests/servers/awx.py, the AWX API test double: authentication, lists, filters, pagination, errors."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from tests.servers.awx import AwxServer


@pytest.fixture
def awx():
    server = AwxServer().start()
    yield server
    server.stop()


def call(server, method, path, body=None, token="test-token", basic=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
            return reply.status, (json.loads(raw) if raw else None), dict(reply.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, (json.loads(raw) if raw else None), dict(err.headers)


def test_authentication_and_product_headers(awx):
    status, body, headers = call(awx, "GET", "/api/v2/ping/", token=None)
    assert status == 401 and body == {"detail": "Authentication credentials were not provided."}
    status, body, headers = call(awx, "GET", "/api/v2/ping/")
    assert status == 200 and headers["X-API-Product-Name"] == "AWX" and headers["X-API-Product-Version"] == body["version"]
    status, body, _headers = call(awx, "POST", "/api/v2/tokens/", {"description": "x"}, token=None, basic=("admin", "test-password"))
    assert status == 201 and call(awx, "GET", "/api/v2/me/", token=body["token"])[0] == 200
    assert call(awx, "DELETE", "/api/v2/tokens/%d/" % body["id"], token=None, basic=("admin", "test-password"))[0] == 204
    assert call(awx, "GET", "/api/v2/me/", token=body["token"])[0] == 401
    assert call(awx, "POST", "/api/v2/tokens/", {}, token=None, basic=("admin", "wrong"))[0] == 401


def test_lists_filter_and_paginate(awx):
    for number in range(30):
        assert call(awx, "POST", "/api/v2/organizations/", {"name": "org%02d" % number})[0] == 201
    status, page, _headers = call(awx, "GET", "/api/v2/organizations/?page_size=10")
    assert status == 200 and page["count"] == 31 and len(page["results"]) == 10 and page["previous"] is None
    seen = [o["name"] for o in page["results"]]
    while page["next"]:
        page = call(awx, "GET", page["next"])[1]
        seen += [o["name"] for o in page["results"]]
    assert len(seen) == 31 and len(set(seen)) == 31
    status, page, _headers = call(awx, "GET", "/api/v2/organizations/?name=org07")
    assert page["count"] == 1 and page["results"][0]["url"] == "/api/v2/organizations/%d/" % page["results"][0]["id"]
    assert call(awx, "GET", "/api/v2/organizations/?nmae=org07")[0] == 400
    assert call(awx, "POST", "/api/v2/organizations/", {"name": "org07"})[0] == 400  # unique name
    assert call(awx, "GET", "/api/v2/organizations/99999/")[0] == 404


def test_unknown_fields_are_ignored_like_awx_and_recorded(awx):
    status, org, _headers = call(awx, "POST", "/api/v2/organizations/", {"name": "sciops", "colour": "blue"})
    assert status == 201 and "colour" not in org
    assert awx.violations == ["request organizations: colour is not a field of organization (AWX ignores it)"]
    awx.violations.clear()


def test_credentials_hide_secrets_and_keep_them_on_encrypted(awx):
    org = call(awx, "POST", "/api/v2/organizations/", {"name": "sciops"})[1]
    status, cred, _headers = call(awx, "POST", "/api/v2/credentials/", {
        "name": "v", "organization": org["id"], "credential_type": 3, "inputs": {"vault_id": "staging", "vault_password": "pw"}})
    assert status == 201 and cred["inputs"] == {"vault_id": "staging", "vault_password": "$encrypted$"}
    status, cred, _headers = call(awx, "PATCH", cred["url"], {"inputs": {"vault_id": "staging", "vault_password": "$encrypted$"}})
    assert status == 200 and awx.find("credentials", "v")["inputs"]["vault_password"] == "pw"
    status, body, _headers = call(awx, "PATCH", cred["url"], {"inputs": {"vault_idd": "x"}})
    assert status == 400 and "vault_idd" in body["inputs"]
