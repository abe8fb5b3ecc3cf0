# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GoDaddy Domains API v1 client and DNS record-set logic (shared by the godaddy_* modules)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from ansible.module_utils.basic import env_fallback
except ImportError:  # not under Ansible (the Let's Encrypt DNS hook): argument specs are not used there
    env_fallback = None

from ansible_collections.sciops.platform.plugins.module_utils.http_api import ApiClient, ApiError

PROD_URL = 'https://api.godaddy.com'
OTE_URL = 'https://api.ote-godaddy.com'
# The record types of GoDaddy's published Domains API v1 specification (the enum of the {type} path
# parameter and of DNSRecord.type), in its order. This is the one list: godaddy_dns_record_info
# offers it, the test server serves it, and tests/unit/plugins/modules/test_record_types.py keeps
# it, the modules' documented choices and the specification equal. (CAA is not in the
# specification, so it is not offered.)
RECORD_TYPES = ('A', 'AAAA', 'CNAME', 'MX', 'NS', 'SOA', 'SRV', 'TXT')
# What godaddy_dns_record writes: all but SOA, the zone's own record (one, at the apex, kept by
# GoDaddy's name servers; DELETE does not accept it and rewriting it has no use here).
WRITABLE_RECORD_TYPES = tuple(t for t in RECORD_TYPES if t != 'SOA')
# DELETE /v1/domains/{domain}/records/{type}/{name} accepts these types only (the API's own
# list); a set of another type is removed by rewriting that type's records (PUT .../{type}).
DELETABLE_TYPES = ('A', 'AAAA', 'CNAME', 'MX', 'SRV', 'TXT')
HOSTNAME_TYPES = ('CNAME', 'MX', 'NS', 'SRV')
MIN_TTL = 600
ACCESS_DENIED_HINT = (
    'GoDaddy restricts its DNS API to larger accounts (a minimum number of domains or a paid '
    'plan); this account has no access to it. For testing, use the OTE sandbox: base_url=%s '
    'with an OTE API key and secret.' % OTE_URL)


def godaddy_argument_spec():
    return dict(
        api_key=dict(type='str', no_log=True, fallback=(env_fallback, ['GODADDY_API_KEY'])),
        api_secret=dict(type='str', no_log=True, fallback=(env_fallback, ['GODADDY_API_SECRET'])),
        base_url=dict(type='str', default=PROD_URL, fallback=(env_fallback, ['GODADDY_API_URL'])),
        timeout=dict(type='int', default=60),
        validate_certs=dict(type='bool', default=True),
    )


class GoDaddyClient(ApiClient):
    provider = 'GoDaddy'

    def __init__(self, base_url, api_key, api_secret, **kwargs):
        kwargs.setdefault('secrets', (api_key, api_secret))
        super(GoDaddyClient, self).__init__(base_url, **kwargs)
        self._auth = 'sso-key %s:%s' % (api_key, api_secret)

    def auth_headers(self):
        return {'Authorization': self._auth}

    def parse_error(self, status, data):
        if not isinstance(data, dict) or not (data.get('code') or data.get('message')):
            return None, None, []  # not GoDaddy's {code, message, fields}: the client shows an excerpt
        fields = []
        for field in data.get('fields') or []:
            if isinstance(field, dict):
                text = 'field %s' % field.get('path', '?')
                if field.get('code'):
                    text += ': %s' % field['code']
                if field.get('message'):
                    text += ' %s' % field['message']
                fields.append(text)
        return data.get('code'), data.get('message'), fields

    def retry_after(self, response):
        data = response.data
        if isinstance(data, dict) and data.get('retryAfterSec') is not None:
            try:
                return float(data['retryAfterSec'])
            except (TypeError, ValueError):
                pass
        header = response.header('Retry-After')
        try:
            return float(header) if header is not None else None
        except ValueError:
            return None

    def hint(self, status, code):
        if status == 403 and code == 'ACCESS_DENIED':
            return ACCESS_DENIED_HINT
        return ''

    # --- routes --------------------------------------------------------------------------
    def _path(self, domain, *parts):
        return '/v1/domains/%s/records%s' % (self.quote(domain), ''.join('/' + self.quote(p) for p in parts))

    def list_records(self, domain, record_type=None, name=None):
        parts = [p for p in (record_type, name) if p]
        return self.request('GET', self._path(domain, *parts)).data or []

    def replace_set(self, domain, record_type, name, records):
        self.request('PUT', self._path(domain, record_type, name), body=records)

    def replace_type(self, domain, record_type, records):
        self.request('PUT', self._path(domain, record_type), body=records)

    def delete_set(self, domain, record_type, name):
        self.request('DELETE', self._path(domain, record_type, name), expected=(200, 204))


# --- record values -------------------------------------------------------------------------
def relative_name(name, domain):
    name = name.rstrip('.')
    if name in ('', '@') or name.lower() == domain.lower():
        return '@'
    suffix = '.' + domain.lower()
    if name.lower().endswith(suffix):
        return name[:-len(suffix)]
    return name


def parse_value(record_type, value, name, ttl):
    """A user value ("10 mx.example.org" for MX, "PRIO WEIGHT PORT TARGET" for SRV) -> API record."""
    value = '%s' % value
    record = {'data': value, 'ttl': ttl}
    if record_type == 'MX':
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError('MX value %r must be "PRIORITY HOST", for example "10 mail.example.org"' % value)
        record.update(priority=int(parts[0]), data=parts[1])
    elif record_type == 'SRV':
        parts = value.split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
            raise ValueError('SRV value %r must be "PRIORITY WEIGHT PORT TARGET", for example '
                             '"10 5 5060 sip.example.org"' % value)
        labels = name.split('.')
        if len(labels) < 2 or not labels[0].startswith('_') or not labels[1].startswith('_'):
            raise ValueError('SRV record name %r must start with _service._protocol' % name)
        if not 1 <= int(parts[2]) <= 65535:
            raise ValueError('SRV port in %r must be between 1 and 65535' % value)
        record.update(priority=int(parts[0]), weight=int(parts[1]), port=int(parts[2]), data=parts[3],
                      service=labels[0], protocol=labels[1])
    elif not value:
        raise ValueError('empty %s value' % record_type)
    return record


def format_value(record_type, record):
    if record_type == 'MX':
        return '%s %s' % (record.get('priority', 0), record.get('data'))
    if record_type == 'SRV':
        return '%s %s %s %s' % (record.get('priority', 0), record.get('weight', 0), record.get('port', 0), record.get('data'))
    return record.get('data')


def record_key(record_type, record):
    data = record.get('data') or ''
    if record_type in HOSTNAME_TYPES:
        data = data.lower().rstrip('.')
    return (data, record.get('priority'), record.get('weight'), record.get('port'))


def api_record(record_type, record):
    """The body item of PUT .../{type}/{name} (DNSRecordCreateTypeName) from a stored record."""
    keep = ('data', 'ttl')
    if record_type == 'MX':
        keep += ('priority',)
    elif record_type == 'SRV':
        keep += ('priority', 'weight', 'port', 'service', 'protocol')
    return dict((k, record[k]) for k in keep if record.get(k) is not None)


def describe(record_type, name, records):
    """diff/return view of a record set."""
    if not records:
        return {}
    ttls = sorted(set(r.get('ttl') for r in records if r.get('ttl') is not None))
    return {
        'type': record_type,
        'name': name,
        'ttl': ttls[0] if len(ttls) == 1 else ttls,
        'values': sorted(format_value(record_type, r) for r in records),
    }


def plan_record_set(record_type, current, desired, ttl, state, solo):
    """Compute the record set to write. Returns (changed, target records).

    current: records the API returned for this type and name. desired: parsed user values
    (may be empty). state present+solo: exactly desired; present+not solo: current plus
    desired (desired values get ``ttl``); absent with values: current minus them; absent
    without values: nothing.
    """
    cur = [api_record(record_type, r) for r in current]
    cur_keys = [record_key(record_type, r) for r in cur]
    want_keys = [record_key(record_type, r) for r in desired]
    if state == 'present':
        if solo:
            target = list(desired)
            changed = sorted(cur_keys) != sorted(want_keys) or any(r.get('ttl') != ttl for r in cur)
        else:
            target = []
            changed = False
            for rec, key in zip(cur, cur_keys):
                if key in want_keys and rec.get('ttl') != ttl:
                    rec = dict(rec, ttl=ttl)
                    changed = True
                target.append(rec)
            for rec, key in zip(desired, want_keys):
                if key not in cur_keys:
                    target.append(rec)
                    changed = True
    else:
        if desired:
            target = [r for r, k in zip(cur, cur_keys) if k not in want_keys]
        else:
            target = []
        changed = len(target) != len(cur)
    # de-duplicate (the API refuses duplicates)
    seen, unique = set(), []
    for rec in target:
        key = record_key(record_type, rec)
        if key not in seen:
            seen.add(key)
            unique.append(rec)
    return changed, unique


__all__ = ['ApiError', 'GoDaddyClient', 'RECORD_TYPES', 'WRITABLE_RECORD_TYPES', 'MIN_TTL']
