#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: godaddy_dns_record_info
short_description: List the DNS records of a GoDaddy zone
version_added: 0.1.0
description:
  - Lists the records of a domain hosted by GoDaddy DNS, optionally only one type, or one type
    and name. One API call.
author:
  - sciops.platform maintainers (@sciops)
extends_documentation_fragment:
  - sciops.platform.godaddy
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  domain:
    description:
      - The domain (zone), for example V(example.org).
    type: str
    required: true
  type:
    description:
      - Only records of this type (the types of GoDaddy's published API specification).
    type: str
    choices: [A, AAAA, CNAME, MX, NS, SOA, SRV, TXT]
  name:
    description:
      - Only records of this name (relative to O(domain), V(@) for the apex).
      - Without O(type), the filter is applied to the full list locally.
    type: str
'''

EXAMPLES = r'''
- name: All records of the zone
  sciops.platform.godaddy_dns_record_info:
    domain: example.org
  register: zone

- name: The TXT records of _acme-challenge
  sciops.platform.godaddy_dns_record_info:
    domain: example.org
    type: TXT
    name: _acme-challenge
  register: challenges
'''

RETURN = r'''
records:
  description: The records, as the API returns them.
  returned: success
  type: list
  elements: dict
  sample: [{"type": "A", "name": "www", "data": "203.0.113.10", "ttl": 600}]
api_calls:
  description: Number of HTTP requests made (retries included).
  returned: always
  type: int
  sample: 1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sciops.platform.plugins.module_utils.godaddy import (
    RECORD_TYPES, ApiError, GoDaddyClient, godaddy_argument_spec, relative_name)


def main():
    argument_spec = godaddy_argument_spec()
    argument_spec.update(
        domain=dict(type='str', required=True),
        type=dict(type='str', choices=list(RECORD_TYPES)),
        name=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not p['api_key'] or not p['api_secret']:
        module.fail_json(msg='GoDaddy credentials missing: set api_key and api_secret '
                             '(or the environment variables GODADDY_API_KEY and GODADDY_API_SECRET)', api_calls=0)
    domain = p['domain'].rstrip('.').lower()
    name = relative_name(p['name'], domain) if p['name'] else None
    client = GoDaddyClient(p['base_url'], p['api_key'], p['api_secret'], timeout=p['timeout'],
                           validate_certs=p['validate_certs'])
    try:
        if p['type'] and name:
            records = client.list_records(domain, p['type'], name)
        else:
            records = client.list_records(domain, p['type'])
            if name:
                records = [r for r in records if r.get('name') == name]
    except ApiError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code, fields=exc.fields, api_calls=client.calls)
    module.exit_json(changed=False, records=records, api_calls=client.calls)


if __name__ == '__main__':
    main()
