# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider-neutral JSON-over-HTTP client used by the GoDaddy and DigitalOcean modules.

One call to ``ApiClient.request`` is one logical API operation: it retries 429 (waiting as
long as the provider asks), 5xx and connection errors (capped exponential backoff), all
within one time budget (the modules' ``timeout`` option). Non-idempotent calls (POST) are
not retried after a fault that may have reached the provider; the caller decides (see the
droplet module, which re-lists by name first).

Only the standard library and ansible.module_utils are used. Without Ansible (the Let's
Encrypt DNS hook runs this file on a node with Debian's python3 only), requests go through
urllib.request with the same semantics: TLS verified against the system CA store unless
``validate_certs`` is false, redirects not followed, and non-2xx statuses raised as HTTPError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import socket
import ssl
import time

from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener

try:
    from ansible.module_utils.urls import open_url
except ImportError:  # not under Ansible: the standard-library path below (stdlib_open_url)
    open_url = None

RETRY_STATUSES = (500, 502, 503, 504)
MASK = '********'
EXCERPT_LENGTH = 200
# What looks like a credential in a body the client did not expect: the modules' authorization
# schemes with their token (GoDaddy's sso-key, DigitalOcean's Bearer), the value of an Authorization
# header, of a key/secret/token/password field, and DigitalOcean's personal access tokens.
_TOKEN = r'[^\s"\',;<>&]+'
CREDENTIAL_PATTERNS = (
    re.compile(r'(?i)\b(sso-key|bearer)(\s+)' + _TOKEN),
    re.compile(r'(?i)\b(authorization["\']?\s*[:=]\s*["\']?)(?!sso-key\b|bearer\b)' + _TOKEN),
    re.compile(r'(?i)\b((?:api[_-]?)?(?:key|secret|token|password)["\']?\s*[:=]\s*["\']?)' + _TOKEN),
    re.compile(r'\b(dop_v1_)[0-9a-f]+'),
)


def body_excerpt(data, redact=None, length=EXCERPT_LENGTH):
    """A short, one-line excerpt of a response body (the client's parsed ``data``): whitespace
    collapsed, credentials masked (``redact`` masks the values the client holds), at most
    ``length`` characters. None when there is no body."""
    if data is None or data == '':
        return None
    if isinstance(data, dict) and set(data) == {'raw'}:
        text = data['raw']
    else:
        try:
            text = json.dumps(data, sort_keys=False)
        except (TypeError, ValueError):
            text = '%s' % (data,)
    text = ' '.join(('%s' % text).split())
    if redact is not None:
        text = redact(text)
    for pattern in CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: ''.join(g for g in m.groups() if g) + MASK, text)
    if len(text) > length:
        text = text[:length] + '...'
    return text


class _NoRedirect(HTTPRedirectHandler):
    """A 3xx is answered as it is (urllib then raises HTTPError for it), like follow_redirects='none'."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def stdlib_open_url(url, data=None, headers=None, method=None, timeout=10, validate_certs=True):
    """open_url's subset used here, with urllib.request only: returns the response for 2xx and
    raises HTTPError for any other status (URLError and socket errors for no response).
    Proxies from the environment (https_proxy, no_proxy) are used, as open_url does."""
    context = ssl.create_default_context()  # the system CA store
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = build_opener(HTTPSHandler(context=context), _NoRedirect())
    return opener.open(Request(url, data=data, headers=headers or {}, method=method), timeout=timeout)


class ApiError(Exception):
    """An API operation failed. ``str()`` is one readable line without secrets."""

    def __init__(self, message, status=None, code=None, fields=None, body=None):
        super(ApiError, self).__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.fields = fields or []
        self.body = body

    def __str__(self):
        return self.message


class ApiConnectionError(ApiError):
    """No (complete) response: the request may or may not have reached the provider."""


class ApiTimeout(ApiError):
    """The operation's time budget ran out."""


class Response:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data

    def header(self, name, default=None):
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return default


class ApiClient:
    """Subclasses set ``provider`` and implement ``auth_headers``, ``parse_error`` and ``retry_after``."""

    provider = 'API'
    user_agent = 'sciops.platform'

    def __init__(self, base_url, timeout=60, secrets=(), backoff_base=0.5, backoff_cap=8.0,
                 validate_certs=True, sleep=time.sleep, clock=time.monotonic, log=None):
        self.base_url = base_url.rstrip('/')
        self.timeout = float(timeout)
        self.secrets = [s for s in secrets if s]
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.validate_certs = validate_certs
        self.sleep = sleep
        self.clock = clock
        self.log = log
        self.calls = 0

    # --- hooks ---------------------------------------------------------------------------
    def auth_headers(self):
        return {}

    def parse_error(self, status, data):
        """Return (code, message, fields) from an error body."""
        return None, None, []

    def retry_after(self, response):
        """Seconds the provider asks to wait after a 429, or None when it does not say."""
        return None

    def hint(self, status, code):
        return ''

    # --- helpers -------------------------------------------------------------------------
    def redact(self, text):
        text = '%s' % (text,)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def url(self, path, query=None):
        url = self.base_url + path
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            if items:
                url += '?' + urlencode(items)
        return url

    @staticmethod
    def quote(segment):
        return quote('%s' % segment, safe='@')

    def _backoff(self, attempt):
        return min(self.backoff_cap, self.backoff_base * (2 ** attempt))

    def _error(self, status, data, method, path):
        code, message, fields = self.parse_error(status, data)
        parts = ['%s API error: HTTP %s' % (self.provider, status)]
        if code:
            parts.append(code)
        text = ' '.join(parts)
        if message:
            text += ': %s' % message
        if fields:
            text += ' (%s)' % '; '.join(fields)
        if not (code or message or fields):
            # not the provider's error shape (a proxy's HTML page, plain text, other JSON)
            excerpt = body_excerpt(data, self.redact)
            if excerpt is None:
                text += ', no body'
            else:
                text += ", body not in %s's error format: '%s'" % (self.provider, excerpt)
        text += ' [%s %s]' % (method, path)
        hint = self.hint(status, code)
        if hint:
            text += '. ' + hint
        return ApiError(self.redact(text), status=status, code=code, fields=fields, body=data)

    def _send(self, method, url, body, timeout):
        headers = {'Accept': 'application/json', 'User-Agent': self.user_agent}
        headers.update(self.auth_headers())
        data = None
        if body is not None:
            data = json.dumps(body).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        self.calls += 1
        try:
            if open_url is not None:
                resp = open_url(url, data=data, headers=headers, method=method, timeout=timeout,
                                validate_certs=self.validate_certs, follow_redirects='none',
                                use_proxy=True)
            else:
                resp = stdlib_open_url(url, data=data, headers=headers, method=method, timeout=timeout,
                                       validate_certs=self.validate_certs)
            status = resp.getcode()
            raw = resp.read()
            resp_headers = dict(resp.headers.items())
        except HTTPError as exc:
            status = exc.code
            try:
                raw = exc.read()
            except Exception:  # the body of an error may be cut off; the status is enough
                raw = b''
            resp_headers = dict(exc.headers.items()) if exc.headers else {}
        data = None
        if raw:
            try:
                data = json.loads(raw.decode('utf-8'))
            except ValueError:
                data = {'raw': raw.decode('utf-8', 'replace')[:500]}
        return Response(status, resp_headers, data)

    # --- the one entry point -------------------------------------------------------------
    def request(self, method, path, query=None, body=None, expected=(200,), retry_unsafe=None):
        """Run one API operation. Returns a Response with a status in ``expected``.

        ``retry_unsafe``: retry 5xx and connection errors even though the request may have
        been applied (default: only for GET, PUT and DELETE, which are idempotent).
        """
        if retry_unsafe is None:
            retry_unsafe = method in ('GET', 'HEAD', 'PUT', 'DELETE')
        url = self.url(path, query)
        shown = self.redact(path)
        deadline = self.clock() + self.timeout
        attempt = 0
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise ApiTimeout(self.redact('%s API: %s %s did not succeed within the timeout of %ss'
                                             % (self.provider, method, shown, int(self.timeout))))
            wait = None
            try:
                resp = self._send(method, url, body, remaining)
            except (URLError, HTTPException, socket.timeout, socket.error, ConnectionError) as exc:
                reason = getattr(exc, 'reason', exc)
                if not retry_unsafe:
                    raise ApiConnectionError(self.redact('%s API: no response to %s %s: %s'
                                                         % (self.provider, method, shown, reason)))
                last = self.redact('%s API: no response to %s %s: %s' % (self.provider, method, shown, reason))
                wait = self._backoff(attempt)
                resp = None
            if resp is not None:
                if resp.status in expected:
                    return resp
                if resp.status == 429:
                    wait = self.retry_after(resp)
                    if wait is None:
                        wait = self._backoff(attempt)
                    wait = max(0.0, float(wait))
                    last = self._error(resp.status, resp.data, method, shown).message
                    if self.clock() + wait > deadline:
                        raise ApiTimeout(self.redact(
                            '%s; the provider asks to wait %ss, beyond the timeout of %ss'
                            % (last, int(round(wait)), int(self.timeout))), status=429)
                elif resp.status in RETRY_STATUSES and retry_unsafe:
                    last = self._error(resp.status, resp.data, method, shown).message
                    wait = self._backoff(attempt)
                else:
                    raise self._error(resp.status, resp.data, method, shown)
            if self.clock() + wait > deadline:
                raise ApiTimeout(self.redact('%s (gave up after %d attempts within the timeout of %ss)'
                                             % (last, attempt + 1, int(self.timeout))))
            if self.log:
                self.log('%s: retrying in %.1fs after: %s' % (self.provider, wait, last))
            self.sleep(wait)
            attempt += 1
