#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: godaddy_dns_record
short_description: Manage a DNS record set (or single values in it) in a GoDaddy zone
version_added: 0.1.0
description:
  - Ensures that the records of one type and name in a domain hosted by GoDaddy DNS hold
    exactly the given values (O(solo=true)), or at least the given values (O(solo=false)), or
    that the record set or single values in it are absent.
  - "GoDaddy's C(PUT /v1/domains/{domain}/records/{type}/{name}) replaces every record of that
    type and name. With O(solo=false) the module reads the set first and writes it back with the
    given values added or removed, so that, for example, two ACME C(TXT) challenges for the same
    name do not clobber each other."
  - Each task reads the record set once and writes it at most once.
author:
  - sciops.platform maintainers (@sciops)
extends_documentation_fragment:
  - sciops.platform.godaddy
attributes:
  check_mode:
    support: full
    description: Reads the record set and reports what would change; sends no write.
  diff_mode:
    support: full
    description: Shows the record set before and after.
options:
  domain:
    description:
      - The domain (zone) as registered with GoDaddy, for example V(example.org).
    type: str
    required: true
  name:
    description:
      - Name of the record set relative to O(domain); V(@) for the zone apex.
      - A fully qualified name ending with O(domain) is made relative.
    type: str
    required: true
  type:
    description:
      - Record type, one of those GoDaddy's published API specification lists (V(SOA), the zone's
        own record, is not written).
    type: str
    required: true
    choices: [A, AAAA, CNAME, MX, NS, SRV, TXT]
  values:
    description:
      - The record values.
      - V(MX) values are C(PRIORITY HOST), for example V(10 mail.example.org).
      - V(SRV) values are C(PRIORITY WEIGHT PORT TARGET), for example V(10 5 5060 sip.example.org);
        the record O(name) then starts with C(_service._protocol).
      - V(TXT) values are given without surrounding quotes.
      - Required with O(state=present). With O(state=absent), the values to remove; when
        omitted, the whole record set is removed.
    type: list
    elements: str
    aliases: [value]
  ttl:
    description:
      - Time to live in seconds of the records written. GoDaddy's minimum is 600.
    type: int
    default: 3600
  solo:
    description:
      - With V(true) (exclusive), the record set holds exactly O(values) afterwards; other
        values of the same type and name are removed.
      - With V(false) (additive), O(values) are added to the record set and the other values are
        kept.
      - Only used with O(state=present).
    type: bool
    default: true
  state:
    description:
      - V(present) ensures the values are there; V(absent) removes the given values, or the whole
        record set when O(values) is omitted.
    type: str
    choices: [present, absent]
    default: present
'''

EXAMPLES = r'''
- name: Point www at two addresses (exactly these)
  sciops.platform.godaddy_dns_record:
    domain: example.org
    name: www
    type: A
    values: [203.0.113.10, 203.0.113.11]
    ttl: 600

- name: Add an ACME challenge without removing a concurrent one
  sciops.platform.godaddy_dns_record:
    domain: example.org
    name: _acme-challenge
    type: TXT
    values: ["{{ acme_challenge_token }}"]
    solo: false
    ttl: 600

- name: Remove only that challenge value afterwards
  sciops.platform.godaddy_dns_record:
    domain: example.org
    name: _acme-challenge
    type: TXT
    values: ["{{ acme_challenge_token }}"]
    state: absent

- name: Mail exchangers
  sciops.platform.godaddy_dns_record:
    domain: example.org
    name: "@"
    type: MX
    values: ["10 mx1.example.org", "20 mx2.example.org"]

- name: Remove a record set, against the OTE sandbox
  sciops.platform.godaddy_dns_record:
    domain: example.org
    name: old
    type: CNAME
    state: absent
    base_url: https://api.ote-godaddy.com
'''

RETURN = r'''
record:
  description: The record set after the task (what it would be, in check mode); empty when absent.
  returned: success
  type: dict
  contains:
    type:
      description: Record type.
      type: str
      sample: TXT
    name:
      description: Record name relative to the domain.
      type: str
      sample: _acme-challenge
    ttl:
      description: TTL of the records (a list when they differ).
      type: raw
      sample: 600
    values:
      description: The values, sorted, in the format of O(values).
      type: list
      elements: str
      sample: [token-one, token-two]
records:
  description: The records of the set after the task, as the API represents them.
  returned: success
  type: list
  elements: dict
  sample: [{"data": "203.0.113.10", "ttl": 600}]
diff:
  description: The record set before and after (with C(--diff)).
  returned: success
  type: dict
  contains:
    before:
      description: The record set before.
      type: dict
    after:
      description: The record set after.
      type: dict
api_calls:
  description: Number of HTTP requests the task made (retries included).
  returned: always
  type: int
  sample: 2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sciops.platform.plugins.module_utils.godaddy import (
    DELETABLE_TYPES, MIN_TTL, WRITABLE_RECORD_TYPES, ApiError, GoDaddyClient, describe, godaddy_argument_spec,
    parse_value, plan_record_set, relative_name)


def main():
    argument_spec = godaddy_argument_spec()
    argument_spec.update(
        domain=dict(type='str', required=True),
        name=dict(type='str', required=True),
        type=dict(type='str', required=True, choices=list(WRITABLE_RECORD_TYPES)),
        values=dict(type='list', elements='str', aliases=['value']),
        ttl=dict(type='int', default=3600),
        solo=dict(type='bool', default=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ['values'])])
    p = module.params
    if not p['api_key'] or not p['api_secret']:
        module.fail_json(msg='GoDaddy credentials missing: set api_key and api_secret '
                             '(or the environment variables GODADDY_API_KEY and GODADDY_API_SECRET)', api_calls=0)
    if p['ttl'] < MIN_TTL:
        module.fail_json(msg='ttl %d is below GoDaddy\'s minimum of %d seconds' % (p['ttl'], MIN_TTL), api_calls=0)
    domain = p['domain'].rstrip('.').lower()
    rtype = p['type']
    name = relative_name(p['name'], domain)
    values = p['values'] or []
    if p['state'] == 'present' and not values:
        module.fail_json(msg='values must hold at least one value with state=present', api_calls=0)
    if rtype == 'CNAME' and p['state'] == 'present' and p['solo'] and len(values) > 1:
        module.fail_json(msg='a CNAME record set holds one value', api_calls=0)
    try:
        desired = [parse_value(rtype, v, name, p['ttl']) for v in values]
    except ValueError as exc:
        module.fail_json(msg='%s' % exc, api_calls=0)

    client = GoDaddyClient(p['base_url'], p['api_key'], p['api_secret'], timeout=p['timeout'],
                           validate_certs=p['validate_certs'])
    by_type = rtype not in DELETABLE_TYPES
    try:
        # One read: the set itself, or (for types the API cannot DELETE) all records of the type.
        if by_type:
            type_records = client.list_records(domain, rtype)
            current = [r for r in type_records if r.get('name') == name]
        else:
            current = client.list_records(domain, rtype, name)
        changed, target = plan_record_set(rtype, current, desired, p['ttl'], p['state'], p['solo'])
        if changed and not module.check_mode:
            if target:
                client.replace_set(domain, rtype, name, target)
            elif by_type:
                rest = [r for r in type_records if r.get('name') != name]
                client.replace_type(domain, rtype, [dict((k, v) for k, v in r.items() if k != 'type') for r in rest])
            else:
                client.delete_set(domain, rtype, name)
    except ApiError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code, fields=exc.fields, api_calls=client.calls)

    result = dict(changed=changed, record=describe(rtype, name, target), records=target, api_calls=client.calls)
    if module._diff:
        result['diff'] = dict(before=describe(rtype, name, current), after=describe(rtype, name, target))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
