"""A fake GitHub for the private hub's tests (a test double, standard library only).

It follows the parts of GitHub's OAuth app and REST contract that oauthenticator's
GitHubOAuthenticator uses when `github_url` points at it:

- GET  /login/oauth/authorize?client_id=&redirect_uri=&state=&scope=   GitHub's sign-in page; the
  test "signs in" by adding login=<user> (what a person types into that page), and is redirected
  to redirect_uri?code=...&state=... (the code is single-use, for that client and redirect_uri).
- POST /login/oauth/access_token   code, client_id, client_secret (form body or HTTP Basic);
  answers JSON when asked (Accept: application/json); errors as GitHub sends them: 200 with
  {"error": "incorrect_client_credentials" | "bad_verification_code" | "redirect_uri_mismatch", ...}.
- GET  /api/v3/user                 the token's user (Authorization: token|bearer <token>), 401 otherwise.
- GET  /api/v3/user/emails          [] (no private e-mail).
- GET  /api/v3/orgs/<org>/members/<user>   204 for a member, 404 with GitHub's message otherwise.
- GET  /_fake/log                   what the fake was asked (for the tests; no secret in it).

    python3 fake_github.py --bind 0.0.0.0 --port 9099 --client-id ID --client-secret SECRET \
        --member tess-research:alice,hub-admin --user mallory
"""
from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


class FakeGitHub:
    def __init__(self, client_id, client_secret, members, users):
        self.client_id = client_id
        self.client_secret = client_secret
        self.orgs = {}        # org -> set of logins
        self.users = {}       # login -> profile
        for org, logins in members.items():
            self.orgs.setdefault(org, set()).update(logins)
        for login in set(users) | {u for logins in members.values() for u in logins}:
            self.users[login] = {"login": login, "id": 1000 + len(self.users), "name": login.title(),
                                 "email": None, "type": "User"}
        self.codes = {}       # code -> (login, client_id, redirect_uri, scope)
        self.tokens = {}      # token -> (login, scope)
        self.log = []
        self.lock = threading.Lock()

    def note(self, **event):
        with self.lock:
            self.log.append(event)


def handler_for(fake):
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeGitHub/1"

        def log_message(self, fmt, *args):  # quiet: the log endpoint records what matters
            pass

        def _send(self, status, body=None, headers=None, content_type="application/json"):
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _token_user(self):
            auth = self.headers.get("Authorization", "")
            kind, token = (auth.split(" ", 1) + [""])[:2]
            if kind.lower() not in ("token", "bearer") or token not in fake.tokens:
                return None
            return fake.tokens[token][0]

        def do_GET(self):  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            if url.path == "/login/oauth/authorize":
                return self._authorize(query)
            if url.path == "/_fake/log":
                with fake.lock:
                    return self._send(200, list(fake.log))
            if parts[:2] != ["api", "v3"]:
                return self._send(404, {"message": "Not Found"})
            login = self._token_user()
            if login is None:
                return self._send(401, {"message": "Requires authentication"})
            rest = parts[2:]
            if rest == ["user"]:
                fake.note(event="user", login=login)
                return self._send(200, fake.users[login])
            if rest == ["user", "emails"]:
                return self._send(200, [])
            if len(rest) == 4 and rest[0] == "orgs" and rest[2] == "members":
                org, member = rest[1], rest[3]
                is_member = member in fake.orgs.get(org, set())
                fake.note(event="membership", org=org, login=member, member=is_member)
                if is_member:
                    return self._send(204)
                return self._send(404, {"message": "User does not exist or is not a member of the organization"})
            return self._send(404, {"message": "Not Found"})

        def _authorize(self, query):
            if query.get("client_id") != fake.client_id:
                return self._send(404, b"<h1>404</h1>", content_type="text/html")
            login = query.get("login")
            if not login:
                page = ("<html><body><form method='get'>Sign in to GitHub<input name='login'>"
                        + "".join(f"<input type='hidden' name='{k}' value='{v}'>" for k, v in query.items())
                        + "<button>Sign in</button></form></body></html>")
                return self._send(200, page.encode(), content_type="text/html")
            if login not in fake.users:
                return self._send(200, b"<p>Incorrect username or password.</p>", content_type="text/html")
            code = secrets.token_hex(10)
            with fake.lock:
                fake.codes[code] = (login, query["client_id"], query.get("redirect_uri", ""), query.get("scope", ""))
            fake.note(event="authorize", login=login, scope=query.get("scope", ""))
            target = query.get("redirect_uri", "")
            sep = "&" if "?" in target else "?"
            return self._send(302, headers={"Location": f"{target}{sep}{urlencode({'code': code, 'state': query.get('state', '')})}"})

        def do_POST(self):  # noqa: N802
            url = urlparse(self.path)
            if url.path != "/login/oauth/access_token":
                return self._send(404, {"message": "Not Found"})
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                client_id, client_secret = (base64.b64decode(auth[6:]).decode().split(":", 1) + [""])[:2]
            if client_id != fake.client_id or client_secret != fake.client_secret:
                fake.note(event="token", ok=False, reason="incorrect_client_credentials")
                return self._answer({"error": "incorrect_client_credentials",
                                     "error_description": "The client_id and/or client_secret passed are incorrect."})
            with fake.lock:
                grant = fake.codes.pop(form.get("code", ""), None)
            if grant is None or grant[1] != client_id:
                fake.note(event="token", ok=False, reason="bad_verification_code")
                return self._answer({"error": "bad_verification_code",
                                     "error_description": "The code passed is incorrect or expired."})
            if form.get("redirect_uri") and grant[2] and form["redirect_uri"] != grant[2]:
                fake.note(event="token", ok=False, reason="redirect_uri_mismatch")
                return self._answer({"error": "redirect_uri_mismatch",
                                     "error_description": "The redirect_uri MUST match the registered callback URL."})
            token = "gho_" + secrets.token_hex(16)
            with fake.lock:
                fake.tokens[token] = (grant[0], grant[3])
            fake.note(event="token", ok=True, login=grant[0])
            return self._answer({"access_token": token, "token_type": "bearer", "scope": grant[3]})

        def _answer(self, body):
            if "application/json" in self.headers.get("Accept", ""):
                return self._send(200, body)
            return self._send(200, urlencode(body).encode(), content_type="application/x-www-form-urlencoded")

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--member", action="append", default=[], help="ORG:login,login (repeatable)")
    parser.add_argument("--user", action="append", default=[], help="a login that is in no organization")
    args = parser.parse_args(argv)
    members = {}
    for spec in args.member:
        org, logins = (spec.split(":", 1) + [""])[:2]
        members.setdefault(org, []).extend(x for x in logins.split(",") if x)
    fake = FakeGitHub(args.client_id, args.client_secret, members, args.user)
    server = ThreadingHTTPServer((args.bind, args.port), handler_for(fake))
    server.serve_forever()


if __name__ == "__main__":
    main()
