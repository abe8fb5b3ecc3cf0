"""A stateful local stand-in for GoDaddy's Domains API v1 DNS routes.

Follows the published contract (tests/servers/spec.py validates every request and response
against /work/shared/api-specs/godaddy-domains-v1.with-list-routes.swagger.json): errors as
{"code", "message", "fields": [{"path", "code", "message"}]}, 429 with "retryAfterSec",
PUT .../records/{type}/{name} replacing every record of that type and name, minimum TTL 600.

    python -m tests.servers.godaddy   # serve on an ephemeral port until interrupted
"""
from __future__ import annotations

import copy

from tests.servers import spec
from tests.servers.base import Reply, TestServer

MIN_TTL = 600


class GoDaddyServer(TestServer):
    spec_name = "godaddy"

    def __init__(self, key="test-key", secret="test-secret", domains=("example.org",)):
        super().__init__()
        self.spec = spec.godaddy()
        self.key, self.secret = key, secret
        self.access_denied = False
        self.zones = {d: [{"type": "NS", "name": "@", "data": "ns1.domaincontrol.com", "ttl": 3600},
                          {"type": "NS", "name": "@", "data": "ns2.domaincontrol.com", "ttl": 3600},
                          {"type": "A", "name": "@", "data": "203.0.113.1", "ttl": 600}] for d in domains}

    def records(self, domain, rtype=None, name=None):
        return [r for r in self.zones[domain] if (rtype is None or r["type"] == rtype) and (name is None or r["name"] == name)]

    # --- contract ------------------------------------------------------------------------
    def error(self, status, code, message, fields=None):
        body = {"code": code.upper(), "message": message}
        if fields:
            body["fields"] = [f if isinstance(f, dict) else {"path": "records", "code": "INVALID", "message": f} for f in fields]
        return Reply(status, body)

    def rate_limited(self, wait):
        return Reply(429, {"code": "TOO_MANY_REQUESTS", "message": "Too many requests received within interval",
                           "retryAfterSec": int(wait)})

    def authorized(self, headers):
        if headers.get("authorization") != "sso-key %s:%s" % (self.key, self.secret):
            return self.error(401, "UNABLE_TO_AUTHENTICATE", "Unable to authenticate with the provided credentials")
        if self.access_denied:
            return self.error(403, "ACCESS_DENIED", "Authenticated user is not allowed access")
        return None

    def _check_records(self, records, rtype, name_required):
        fields = []
        seen = set()
        for i, rec in enumerate(records):
            if rec.get("ttl") is not None and rec["ttl"] < MIN_TTL:
                fields.append({"path": "records[%d].ttl" % i, "code": "UNEXPECTED_VALUE",
                               "message": "ttl must be at least %d" % MIN_TTL})
            if rtype in ("MX", "SRV") and rec.get("priority") is None:
                fields.append({"path": "records[%d].priority" % i, "code": "MISSING_VALUE", "message": "priority is required"})
            if rtype == "SRV":
                for key in ("port", "weight", "service", "protocol"):
                    if rec.get(key) is None:
                        fields.append({"path": "records[%d].%s" % (i, key), "code": "MISSING_VALUE", "message": "%s is required" % key})
            key = (rec.get("name"), rec.get("data"), rec.get("priority"), rec.get("port"))
            if key in seen:
                fields.append({"path": "records[%d]" % i, "code": "DUPLICATE_RECORD", "message": "duplicate record"})
            seen.add(key)
        if fields:
            return Reply(422, {"code": "INVALID_BODY", "message": "Request body doesn't fulfill schema, see details in `fields`",
                               "fields": fields})
        if not records:
            return Reply(422, {"code": "INVALID_BODY", "message": "Request body doesn't fulfill schema, see details in `fields`",
                               "fields": [{"path": "records", "code": "MIN_ITEMS", "message": "at least one record is required"}]})
        return None

    def dispatch(self, call, template, params):
        domain = params["domain"]
        if domain not in self.zones:
            return self.error(404, "UNKNOWN_DOMAIN", "The given domain is not registered, or does not have a zone file")
        rtype, name = params.get("type"), params.get("name")
        m = call.method
        if m == "GET":
            return Reply(200, copy.deepcopy(self.records(domain, rtype, name)))
        if template.endswith("{type}/{name}"):
            if m == "PUT":
                bad = self._check_records(call.body, rtype, False)
                if bad:
                    return bad
                self.zones[domain] = [r for r in self.zones[domain] if not (r["type"] == rtype and r["name"] == name)]
                self.zones[domain] += [dict(rec, type=rtype, name=name) for rec in call.body]
                return Reply(200)
            if m == "DELETE":
                if not self.records(domain, rtype, name):
                    return self.error(404, "NOT_FOUND", "No records of type %s named %s" % (rtype, name))
                self.zones[domain] = [r for r in self.zones[domain] if not (r["type"] == rtype and r["name"] == name)]
                return Reply(204)
        if template.endswith("{type}") and m == "PUT":
            bad = self._check_records(call.body, rtype, True) if call.body else None
            if bad:
                return bad
            self.zones[domain] = [r for r in self.zones[domain] if r["type"] != rtype]
            self.zones[domain] += [dict(rec, type=rtype) for rec in call.body]
            return Reply(200)
        if template.endswith("/records"):
            bad = self._check_records(call.body, None, True)
            if bad:
                return bad
            if m == "PUT":
                self.zones[domain] = [copy.deepcopy(r) for r in call.body]
            else:  # PATCH adds
                self.zones[domain] += [copy.deepcopy(r) for r in call.body]
            return Reply(200)
        return self.error(405, "METHOD_NOT_ALLOWED", "not supported by the test server")


if __name__ == "__main__":  # pragma: no cover - manual use
    import time
    srv = GoDaddyServer().start()
    print(srv.url, flush=True)
    while True:
        time.sleep(3600)
