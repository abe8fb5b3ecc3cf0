"""A stateful local stand-in for GoDaddy's Domains API v1 DNS routes.

Follows the published contract (tests/servers/spec.py validates every request and response
against godaddy-domains-v1.with-list-routes.swagger.json, found by spec.locate(), as published
plus the two list routes): errors as
{"code", "message", "fields": [{"path", "code", "message"}]}, 429 with "retryAfterSec",
PUT .../records/{type}/{name} replacing every record of that type and name, minimum TTL 600.

    python -m tests.servers.godaddy --listen 0.0.0.0:8080 --dns 0.0.0.0:53 --domain example.test

serves the API and, with --dns, the zones over DNS (tests/servers/dns.py) until killed.
"""
from __future__ import annotations

import copy

from tests.servers import spec
from tests.servers.base import Reply, TestServer

try:  # the one list of record types (plugins/module_utils/godaddy.py), which the modules offer
    from ansible_collections.sciops.platform.plugins.module_utils.godaddy import RECORD_TYPES
except ImportError:  # standalone on a test node, where only tests/servers is copied: the specification's own list,
    # which tests/unit/plugins/modules/test_record_types.py keeps equal to it
    RECORD_TYPES = tuple(spec.godaddy().doc["definitions"]["DNSRecord"]["properties"]["type"]["enum"])

MIN_TTL = 600
__all__ = ["GoDaddyServer", "MIN_TTL", "RECORD_TYPES", "main"]  # RECORD_TYPES: also the DNS face's (dns.py)


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

    def server_error(self):
        return self.error(500, "INTERNAL_SERVER_ERROR", "Internal server error")

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


def _address(text, default_port):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, default_port
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv=None):  # pragma: no cover - the standalone server (test nodes, manual use)
    """Serve the API (and optionally its DNS face) until killed; one line per API call or DNS query."""
    import argparse
    import os
    import signal
    import sys
    import threading

    from tests.servers.dns import DnsServer

    parser = argparse.ArgumentParser(prog="python -m tests.servers.godaddy", description=(
        "GoDaddy Domains API v1 test server. Credentials from GODADDY_API_KEY / GODADDY_API_SECRET "
        "(default test-key / test-secret); API specifications where python -m tests.servers.spec --locate finds them "
        "(SCIOPS_API_SPECS, ../shared/api-specs beside the checkout, or the cache)."))
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="API address (default 127.0.0.1:0)")
    parser.add_argument("--dns", metavar="HOST:PORT", help="also serve the zones over DNS (UDP and TCP) here")
    parser.add_argument("--domain", action="append", metavar="ZONE", help="a zone to serve (repeatable; default example.org)")
    args = parser.parse_args(argv)

    def echo(line):
        print(line, flush=True)

    domains = [d.rstrip(".").lower() for d in (args.domain or ["example.org"])]
    srv = GoDaddyServer(key=os.environ.get("GODADDY_API_KEY") or "test-key",
                        secret=os.environ.get("GODADDY_API_SECRET") or "test-secret", domains=domains)
    srv.echo = echo
    srv.start(*_address(args.listen, 0))
    host, port = srv.httpd.server_address[:2]
    echo("godaddy test server: API on http://%s:%d for %s" % (host, port, ", ".join(domains)))
    dns = None
    if args.dns:
        dns = DnsServer(srv, *_address(args.dns, 53), echo=echo).start()
        echo("godaddy test server: DNS on %s:%d (udp, tcp)" % dns.udp.server_address[:2])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    if dns:
        dns.stop()
    srv.stop()
    if srv.violations:
        echo("godaddy test server: %d contract violation(s)" % len(srv.violations))
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover - manual use
    main()
