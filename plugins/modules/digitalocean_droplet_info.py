#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: digitalocean_droplet_info
short_description: List DigitalOcean droplets
version_added: 0.1.0
description:
  - Lists the droplets of the account, all pages (200 droplets a call, so 1,000 droplets take
    five calls), optionally only those of a name or with a tag (filtered by the API).
author:
  - sciops.platform maintainers (@sciops)
extends_documentation_fragment:
  - sciops.platform.digitalocean
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  name:
    description:
      - Only droplets of this name (exact, case-insensitive).
    type: str
  tag:
    description:
      - Only droplets with this tag.
    type: str
'''

EXAMPLES = r'''
- name: Every droplet of the test environment
  sciops.platform.digitalocean_droplet_info:
    tag: env-test
  register: test_env

- name: Their public addresses
  ansible.builtin.debug:
    msg: "{{ test_env.droplets | map(attribute='public_ipv4') | list }}"
'''

RETURN = r'''
droplets:
  description: The droplets, summarised.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Droplet ID.
      type: int
    name:
      description: Name.
      type: str
    status:
      description: Status.
      type: str
    size:
      description: Size slug.
      type: str
    region:
      description: Region slug.
      type: str
    image:
      description: Image slug or ID.
      type: raw
    tags:
      description: Tags.
      type: list
      elements: str
    vpc_uuid:
      description: VPC UUID.
      type: str
    monitoring:
      description: Whether the monitoring agent is installed.
      type: bool
    backups:
      description: Whether backups are enabled.
      type: bool
    public_ipv4:
      description: Public IPv4 address.
      type: str
    private_ipv4:
      description: Private IPv4 address.
      type: str
api_calls:
  description: Number of HTTP requests made (retries included).
  returned: always
  type: int
  sample: 5
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sciops.platform.plugins.module_utils.digitalocean import (
    ApiError, DigitalOceanClient, digitalocean_argument_spec, droplet_view)


def main():
    argument_spec = digitalocean_argument_spec()
    argument_spec.update(name=dict(type='str'), tag=dict(type='str'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('name', 'tag')])
    p = module.params
    if not p['token']:
        module.fail_json(msg='DigitalOcean token missing: set the token option or the environment variable DIGITALOCEAN_TOKEN',
                         api_calls=0)
    client = DigitalOceanClient(p['base_url'], p['token'], timeout=p['timeout'], validate_certs=p['validate_certs'])
    try:
        droplets = client.list_droplets(name=p['name'], tag_name=p['tag'])
    except ApiError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code, api_calls=client.calls)
    module.exit_json(changed=False, droplets=[droplet_view(d) for d in droplets], api_calls=client.calls)


if __name__ == '__main__':
    main()
