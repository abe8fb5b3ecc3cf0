#!/usr/bin/env python3
"""Launch an AWX job template through its GitHub webhook, as GitHub's push webhook would, signed with the
template's webhook key. The CI workflow (.github/workflows/platform.yml) calls it once the tests have
passed on the main branch (staging) or on a release tag (production).

    AWX_WEBHOOK_URL=https://awx.example.org/api/v2/job_templates/12/github/ AWX_WEBHOOK_KEY=... \\
        scripts/awx-webhook.py --ref refs/heads/main --sha <commit> --repository owner/name --actor alice

The key is read from the environment only (never an argument: a process list shows arguments) and
never printed. AWX answers 202 and queues one job per delivery id; the same delivery sent again (a
retried request) launches nothing, so the request is retried safely on a lost connection or a 5xx.
Standard library only: it runs on any CI runner's python3.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

RECEIVER = re.compile(r"^/api/v2/job_templates/\d+/github/$")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Refused(Exception):
    """A request AWX answered and refused (not retried)."""


def check_url(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise SystemExit("awx-webhook: AWX_WEBHOOK_URL must be an https URL, got %r" % url)
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK:
        raise SystemExit("awx-webhook: AWX_WEBHOOK_URL must be https (plain http only to this machine, for tests)")
    if parsed.username or parsed.password or parsed.query:
        raise SystemExit("awx-webhook: AWX_WEBHOOK_URL carries no credentials or query: the key signs the request")
    if not RECEIVER.match(parsed.path):
        raise SystemExit("awx-webhook: AWX_WEBHOOK_URL must be a job template's GitHub receiver, "
                         "/api/v2/job_templates/<id>/github/ (the template's webhook_receiver), got %s" % parsed.path)
    return url


def payload(args):
    """The fields of GitHub's push event that AWX reads (ref, after) and that identify the change."""
    return {"ref": args.ref, "after": args.sha, "head_commit": {"id": args.sha},
            "repository": {"full_name": args.repository}, "sender": {"login": args.actor}}


def signed_request(url, key, body, delivery):
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "sciops-awx-webhook",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        # AWX checks the SHA-1 signature (awx/api/views/webhooks.py); GitHub sends both.
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
    }
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def send(request, context, timeout):
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def detail(raw):
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return (raw or b"").decode("utf-8", "replace")[:200]
    return data.get("message") or data.get("detail") or json.dumps(data)[:200]


def launch(args, key):
    body = json.dumps(payload(args), sort_keys=True).encode()
    delivery = args.delivery or str(uuid.uuid5(uuid.NAMESPACE_URL, "%s@%s/%s" % (args.repository, args.sha, args.attempt)))
    context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    for attempt in range(1, args.retries + 1):
        try:
            status, raw = send(signed_request(args.url, key, body, delivery), context, args.timeout)
        except (urllib.error.URLError, OSError) as exc:
            status, raw = None, str(getattr(exc, "reason", exc)).encode()
        if status == 202:
            return "AWX: %s (delivery %s, %s at %s)" % (detail(raw), delivery, args.ref, args.sha)
        if status == 403:
            raise Refused("AWX refused the signature (403): AWX_WEBHOOK_KEY is not this template's webhook key")
        if status == 404:
            raise Refused("AWX has no job template with a GitHub webhook at %s (404)" % args.url)
        if status is not None and status < 500:
            raise Refused("AWX answered %d: %s" % (status, detail(raw)))
        reason = "HTTP %d" % status if status else raw.decode("utf-8", "replace")
        if attempt == args.retries:
            raise Refused("AWX could not be reached after %d tries (%s)" % (attempt, reason))
        print("awx-webhook: try %d failed (%s); again in %d s" % (attempt, reason, args.backoff * attempt), file=sys.stderr)
        time.sleep(args.backoff * attempt)
    raise AssertionError("unreachable")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AWX_WEBHOOK_URL", ""),
                        help="the template's webhook receiver (default: $AWX_WEBHOOK_URL)")
    parser.add_argument("--ref", required=True, help="the pushed ref, e.g. refs/heads/main")
    parser.add_argument("--sha", required=True, help="the commit (40 hex digits)")
    parser.add_argument("--repository", required=True, help="owner/name")
    parser.add_argument("--actor", required=True, help="who merged or tagged")
    parser.add_argument("--attempt", default=os.environ.get("GITHUB_RUN_ID", "") + "." + os.environ.get("GITHUB_RUN_ATTEMPT", ""),
                        help="what makes a new delivery for the same commit (default: the CI run and its attempt)")
    parser.add_argument("--delivery", default="", help="the delivery id (default: derived from repository, commit and attempt)")
    parser.add_argument("--ca-file", default=os.environ.get("AWX_CA_FILE", ""), help="CA bundle of AWX's certificate")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--backoff", type=float, default=5.0, help="seconds before the 2nd try (2x before the 3rd ...)")
    args = parser.parse_args(argv)
    key = os.environ.get("AWX_WEBHOOK_KEY", "")
    if not key:
        parser.error("set AWX_WEBHOOK_KEY (the template's webhook key, from the forge's secret store)")
    if not args.url:
        parser.error("set AWX_WEBHOOK_URL or --url")
    check_url(args.url)
    if not re.fullmatch(r"[0-9a-f]{40}", args.sha):
        parser.error("--sha must be a full commit id (40 hex digits), got %r" % args.sha)
    if not re.fullmatch(r"refs/(heads|tags)/\S+", args.ref):
        parser.error("--ref must be refs/heads/<branch> or refs/tags/<tag>, got %r" % args.ref)
    if args.retries < 1:
        parser.error("--retries must be at least 1")
    try:
        print(launch(args, key.encode()))
    except Refused as exc:
        print("awx-webhook: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
