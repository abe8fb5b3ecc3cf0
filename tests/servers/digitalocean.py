"""A stateful local stand-in for DigitalOcean's API v2 droplet routes.

Follows the published contract (tests/servers/spec.py validates every request and response
against digitalocean-v2.bundled.yaml, found by spec.locate()): bearer token, errors as
{"id", "message", "request_id"}, ratelimit-limit/-remaining/-reset headers on every reply, 429 with
retry-after, pagination with links.pages.next (up to 200 per page), droplets that are "new"
after a create and "active" (with their addresses) after ``activate_after`` status reads.

    python -m tests.servers.digitalocean   # serve on an ephemeral port until interrupted
"""
from __future__ import annotations

import copy
import math
import time
import uuid
from urllib.parse import urlencode

from tests.servers import spec
from tests.servers.base import Reply, TestServer

SIZES = {"s-1vcpu-1gb": (1024, 1, 25), "s-2vcpu-4gb": (4096, 2, 80), "s-4vcpu-8gb": (8192, 4, 160)}


class DigitalOceanServer(TestServer):
    spec_name = "digitalocean"

    def __init__(self, token="test-token", activate_after=1):
        super().__init__()
        self.spec = spec.digitalocean()
        self.token = token
        self.activate_after = activate_after
        self.droplets: dict[int, dict] = {}
        self.reads: dict[int, int] = {}
        self.next_id = 3164444
        self.limit, self.remaining = 5000, 5000

    # --- contract ------------------------------------------------------------------------
    def error(self, status, code, message, fields=None):
        # the spec's error schema: id and message required, request_id optional (sent, as the API does)
        return Reply(status, {"id": code, "message": message, "request_id": str(uuid.uuid4())})

    def server_error(self):
        return self.error(500, "server_error", "Unexpected server-side error")

    def rate_limited(self, wait):
        reply = self.error(429, "too_many_requests", "API rate limit exceeded.")
        reply.headers.update({"retry-after": str(int(wait)), "ratelimit-remaining": "0",
                              "ratelimit-reset": str(int(time.time() + wait))})
        return reply

    def decorate(self, reply):
        self.remaining = max(0, self.remaining - 1)
        reply.headers.setdefault("ratelimit-limit", str(self.limit))
        reply.headers.setdefault("ratelimit-remaining", str(self.remaining))
        reply.headers.setdefault("ratelimit-reset", str(int(time.time()) + 60))
        return reply

    def authorized(self, headers):
        if headers.get("authorization") != "Bearer %s" % self.token:
            return self.error(401, "unauthorized", "Unable to authenticate you")
        return None

    # --- state ---------------------------------------------------------------------------
    def add_droplet(self, name, tags=(), status="active", size="s-1vcpu-1gb", region="fra1", image="debian-12-x64", **extra):
        droplet_id = self.next_id
        self.next_id += 1
        memory, vcpus, disk = SIZES.get(size, (1024, 1, 25))
        n = droplet_id - 3164444
        droplet = {
            "id": droplet_id, "name": name, "memory": memory, "vcpus": vcpus, "disk": disk, "locked": False,
            "status": status, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "features": [f for f, on in (("monitoring", extra.get("monitoring")), ("backups", extra.get("backups")),
                                         ("ipv6", extra.get("ipv6"))) if on],
            "backup_ids": [], "next_backup_window": None, "snapshot_ids": [], "volume_ids": [],
            "image": {"id": 129211873, "name": "12 x64", "distribution": "Debian", "slug": image if isinstance(image, str) else None,
                      "public": True, "regions": [region], "created_at": "2024-01-01T00:00:00Z", "type": "base",
                      "min_disk_size": 10, "size_gigabytes": 1.5, "description": "Debian 12 x64", "tags": [], "status": "available"},
            "size": {"slug": size, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": 1.0, "price_monthly": 6.0,
                     "price_hourly": 0.009, "regions": [region], "available": True, "description": "Basic"},
            "size_slug": size,
            "networks": {"v4": [], "v6": []},
            "region": {"name": "Frankfurt 1", "slug": region, "features": ["backups", "ipv6", "metadata"], "available": True,
                       "sizes": list(SIZES)},
            "tags": list(tags),
            "vpc_uuid": extra.get("vpc_uuid") or "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        }
        if status == "active":
            self._activate(droplet, n)
        self.droplets[droplet_id] = droplet
        self.reads[droplet_id] = 0
        return droplet

    @staticmethod
    def _activate(droplet, n=None):
        n = droplet["id"] - 3164444 if n is None else n
        droplet["status"] = "active"
        droplet["networks"]["v4"] = [
            {"ip_address": "203.0.%d.%d" % (113 + n // 250, 10 + n % 250), "netmask": "255.255.255.0",
             "gateway": "203.0.113.1", "type": "public"},
            {"ip_address": "10.110.%d.%d" % (n // 250, 2 + n % 250), "netmask": "255.255.240.0",
             "gateway": "10.110.0.1", "type": "private"},
        ]

    def dispatch(self, call, template, params):
        m = call.method
        q = call.query
        if template == "/v2/droplets" and m == "GET":
            if q.get("tag_name") and (q.get("name") or q.get("type")):
                return self.error(400, "bad_request", "tag_name can not be combined with name or type")
            items = sorted(self.droplets.values(), key=lambda d: d["id"])
            if q.get("name"):
                items = [d for d in items if d["name"].lower() == q["name"].lower()]
            if q.get("tag_name"):
                items = [d for d in items if q["tag_name"] in d["tags"]]
            per_page, page = int(q.get("per_page", 20)), int(q.get("page", 1))
            last = max(1, math.ceil(len(items) / per_page))
            pages = {}

            def link(p):
                return "%s/v2/droplets?%s" % (self.url, urlencode(dict(q, page=p, per_page=per_page)))
            if page > 1:
                pages.update(first=link(1), prev=link(page - 1))
            if page < last:
                pages.update(next=link(page + 1), last=link(last))
            chunk = items[(page - 1) * per_page: page * per_page]
            return Reply(200, {"droplets": copy.deepcopy(chunk), "links": {"pages": pages}, "meta": {"total": len(items)}})
        if template == "/v2/droplets" and m == "POST":
            body = call.body
            for key in ("size", "image"):
                if not body.get(key):
                    return self.error(422, "unprocessable_entity", "You must specify a %s." % key)
            if "names" in body:
                return self.error(422, "unprocessable_entity", "the test server creates one droplet a call")
            if body.get("size") not in SIZES:
                return self.error(422, "unprocessable_entity", "Size is not available in this region.")
            droplet = self.add_droplet(body["name"], tags=body.get("tags") or [], status="new", size=body["size"],
                                       region=body.get("region") or "fra1", image=body["image"],
                                       monitoring=body.get("monitoring"), backups=body.get("backups"),
                                       ipv6=body.get("ipv6"), vpc_uuid=body.get("vpc_uuid"))
            if self.activate_after == 0:
                self._activate(droplet)
            return Reply(202, {"droplet": copy.deepcopy(droplet),
                               "links": {"actions": [{"id": 7515, "rel": "create",
                                                      "href": "%s/v2/actions/7515" % self.url}]}})
        if template == "/v2/droplets" and m == "DELETE":
            for droplet_id in [i for i, d in self.droplets.items() if q["tag_name"] in d["tags"]]:
                del self.droplets[droplet_id]
            return Reply(204)
        if template == "/v2/droplets/{droplet_id}":
            droplet = self.droplets.get(int(params["droplet_id"]))
            if droplet is None:
                return self.error(404, "not_found", "The resource you were accessing could not be found.")
            if m == "GET":
                self.reads[droplet["id"]] += 1
                if droplet["status"] == "new" and self.reads[droplet["id"]] >= self.activate_after:
                    self._activate(droplet)
                return Reply(200, {"droplet": copy.deepcopy(droplet)})
            if m == "DELETE":
                del self.droplets[droplet["id"]]
                return Reply(204)
        return self.error(405, "method_not_allowed", "not supported by the test server")


if __name__ == "__main__":  # pragma: no cover - manual use
    srv = DigitalOceanServer().start()
    print(srv.url, flush=True)
    while True:
        time.sleep(3600)
