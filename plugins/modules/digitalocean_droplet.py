#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: digitalocean_droplet
short_description: Create or remove DigitalOcean droplets, idempotent by name
version_added: 0.1.0
description:
  - Ensures a droplet of a given name exists (created when missing, then waited for until it
    is active) or that droplets are absent, by name or, for a whole group, by tag.
  - The droplet name is the identity. The module never creates a second droplet of the same
    name, also when a create call is retried after its response was lost (a timeout or a closed
    connection); it lists the droplets of that name before each new create attempt.
  - An existing droplet is not resized or rebuilt; when its size, region or image differ from
    the options, the module warns.
  - A run that changes nothing costs one filtered list call (C(GET /v2/droplets?name=...) or
    C(?tag_name=...)).
  - Values the API refuses by its specification (O(name), O(tag), O(tags), O(user_data)) fail the
    task before any request, also in check mode, with a message naming the option.
  - When the droplet was created but does not become active within O(wait_timeout) (or a status
    read fails), the task fails with C(changed=true) and returns the droplet (its id and status).
author:
  - sciops.platform maintainers (@sciops)
extends_documentation_fragment:
  - sciops.platform.digitalocean
attributes:
  check_mode:
    support: full
    description: Lists the droplets and reports what would change; sends no write.
  diff_mode:
    support: full
    description: Shows the droplet's attributes before and after.
options:
  name:
    description:
      - Droplet name (also its hostname). Required with O(state=present).
      - Letters, digits, V(.) and V(-), ending with a letter or digit, at most 255 characters (the
        API's pattern C(^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$)).
      - With O(state=absent), the droplets of this name are removed.
    type: str
  tag:
    description:
      - With O(name), only droplets of that name that carry this tag count as the droplet, and a
        created droplet gets the tag.
      - With O(state=absent) and no O(name), every droplet with this tag is removed (one call).
      - A tag name is letters, digits, V(:), V(-) and V(_), at most 255 characters.
    type: str
  state:
    description:
      - V(present) creates the droplet when missing; V(absent) removes droplets.
    type: str
    choices: [present, absent]
    default: present
  size:
    description:
      - Size slug, for example V(s-1vcpu-1gb). Required with O(state=present).
    type: str
  region:
    description:
      - Region slug, for example V(fra1). Required with O(state=present).
    type: str
  image:
    description:
      - Image slug (for example V(debian-12-x64)) or numeric image ID. Required with O(state=present).
    type: str
  ssh_keys:
    description:
      - IDs or fingerprints of SSH keys of the team to install for root.
    type: list
    elements: str
    default: []
  tags:
    description:
      - Tags to apply when the droplet is created (tag names as for O(tag)).
    type: list
    elements: str
    default: []
  vpc_uuid:
    description:
      - UUID of the VPC to place the droplet in (default, the region's default VPC).
    type: str
  user_data:
    description:
      - Cloud-init user data (plain text, at most 64 KiB, as UTF-8).
    type: str
  monitoring:
    description:
      - Install the DigitalOcean monitoring agent.
    type: bool
    default: false
  backups:
    description:
      - Enable automated backups.
    type: bool
    default: false
  ipv6:
    description:
      - Enable IPv6.
    type: bool
    default: false
  wait:
    description:
      - Wait until a new droplet is V(active) (and has its addresses). A droplet that is V(off) is
        returned as it is.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the droplet to become active.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two status checks while waiting.
    type: float
    default: 5
'''

EXAMPLES = r'''
- name: A database server
  sciops.platform.digitalocean_droplet:
    name: prod-db1
    size: s-2vcpu-4gb
    region: fra1
    image: debian-12-x64
    ssh_keys: ["3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"]
    tags: [sciops, env-prod, postgres]
    vpc_uuid: 5a4981aa-9653-4bd1-bef5-d6bff52042e4
    monitoring: true
    backups: true
  register: db1

- name: Use its addresses
  ansible.builtin.debug:
    msg: "{{ db1.public_ipv4 }} / {{ db1.private_ipv4 }}"

- name: Remove one droplet
  sciops.platform.digitalocean_droplet:
    name: prod-db1
    state: absent

- name: Remove a whole test environment (every droplet with the tag)
  sciops.platform.digitalocean_droplet:
    tag: env-test
    state: absent
'''

RETURN = r'''
droplet:
  description:
    - The droplet (after creation, or as found); empty when absent or not yet created in check mode.
    - Also returned when the task fails while waiting for a droplet to become active.
  returned: success, or a failed wait
  type: dict
  contains:
    id:
      description: Droplet ID.
      type: int
      sample: 3164444
    name:
      description: Name.
      type: str
      sample: prod-db1
    status:
      description: Status (V(new), V(active), V(off), V(archive)).
      type: str
      sample: active
    size:
      description: Size slug.
      type: str
      sample: s-2vcpu-4gb
    region:
      description: Region slug.
      type: str
      sample: fra1
    image:
      description: Image slug or ID.
      type: raw
      sample: debian-12-x64
    tags:
      description: Tags.
      type: list
      elements: str
      sample: [sciops]
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
      description: Private (VPC) IPv4 address.
      type: str
public_ipv4:
  description: Public IPv4 address of the droplet.
  returned: state=present and the droplet exists
  type: str
  sample: 203.0.113.20
private_ipv4:
  description: Private IPv4 address of the droplet.
  returned: state=present and the droplet exists
  type: str
  sample: 10.110.0.5
removed:
  description: IDs of the droplets removed (or that would be, in check mode).
  returned: state=absent
  type: list
  elements: int
  sample: [3164444]
recovered:
  description: True when a create call got no response but the droplet turned out to exist.
  returned: state=present
  type: bool
  sample: false
api_calls:
  description: Number of HTTP requests made (retries and status polls included).
  returned: always
  type: int
  sample: 1
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sciops.platform.plugins.module_utils.digitalocean import (
    ApiError, DigitalOceanClient, digitalocean_argument_spec, droplet_option_errors, droplet_view)
from ansible_collections.sciops.platform.plugins.module_utils.http_api import ApiConnectionError

CREATE_ATTEMPTS = 3


class WaitTimeout(Exception):
    """The droplet did not leave the "new" state within wait_timeout."""


class DropletManager:
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params

    def find(self):
        p = self.p
        found = self.client.list_droplets(name=p['name'])
        found = [d for d in found if (d.get('name') or '').lower() == p['name'].lower()]
        if p['tag']:
            found = [d for d in found if p['tag'] in (d.get('tags') or [])]
        return found

    def body(self):
        p = self.p
        tags = list(p['tags'])
        if p['tag'] and p['tag'] not in tags:
            tags.append(p['tag'])
        image = int(p['image']) if p['image'].isdigit() else p['image']
        body = dict(name=p['name'], region=p['region'], size=p['size'], image=image,
                    ssh_keys=[int(k) if k.isdigit() else k for k in p['ssh_keys']],
                    tags=tags, monitoring=p['monitoring'], backups=p['backups'], ipv6=p['ipv6'])
        if p['vpc_uuid']:
            body['vpc_uuid'] = p['vpc_uuid']
        if p['user_data'] is not None:
            body['user_data'] = p['user_data']
        return body

    def planned(self):
        body = self.body()
        return dict(id=None, name=body['name'], status='new', size=body['size'], region=body['region'],
                    image=body['image'], tags=sorted(body['tags']), vpc_uuid=body.get('vpc_uuid'),
                    monitoring=body['monitoring'], backups=body['backups'], public_ipv4=None, private_ipv4=None)

    def create(self):
        """Create once. After a lost response or a server error, re-list by name before trying again."""
        body = self.body()
        last = None
        for attempt in range(CREATE_ATTEMPTS):
            if attempt:
                found = self.find()
                if found:
                    return found[0], True
            try:
                return self.client.create_droplet(body), False
            except ApiConnectionError as exc:
                last = exc
            except ApiError as exc:
                if exc.status is None or exc.status < 500:
                    raise
                last = exc
        raise last

    def wait_active(self, droplet):
        """The droplet once it is no longer "new". Raises WaitTimeout; ``self.last`` is the last state read."""
        self.last = droplet
        deadline = time.time() + self.p['wait_timeout']
        # Only a droplet that is being created ("new") becomes active by itself; an "off" one stays off.
        while droplet.get('status') == 'new':
            if time.time() >= deadline:
                raise WaitTimeout('droplet %s (id %s) is still %s after %ss'
                                  % (droplet.get('name'), droplet.get('id'), droplet.get('status'), self.p['wait_timeout']))
            time.sleep(self.p['poll_interval'])
            droplet = self.last = self.client.get_droplet(droplet['id'])
        return droplet

    def present(self):
        p = self.p
        result = dict(changed=False, recovered=False)
        found = self.find()
        if len(found) > 1:
            self.module.fail_json(msg='%d droplets are named %s (ids %s); the name must identify one droplet'
                                  % (len(found), p['name'], ', '.join(str(d['id']) for d in found)),
                                  api_calls=self.client.calls)
        before = droplet_view(found[0]) if found else {}
        if found:
            droplet = found[0]
            view = droplet_view(droplet)
            for key in ('size', 'region', 'image'):
                want = p[key]
                if want is not None and '%s' % view.get(key) != want:
                    self.module.warn('droplet %s exists with %s %s (not %s); it is left as it is'
                                     % (p['name'], key, view.get(key), want))
        elif self.module.check_mode:
            result.update(changed=True, droplet={}, diff=dict(before={}, after=self.planned()))
            return result
        else:
            droplet, recovered = self.create()
            result.update(changed=True, recovered=recovered)
        if p['wait']:
            try:
                droplet = self.wait_active(droplet)
            except (WaitTimeout, ApiError) as exc:
                # The droplet exists (and, when just created, costs money): say so, with its id and state.
                view = droplet_view(self.last)
                self.module.fail_json(msg='%s' % exc, droplet=view, public_ipv4=view['public_ipv4'],
                                      private_ipv4=view['private_ipv4'], status=getattr(exc, 'status', None),
                                      code=getattr(exc, 'code', None), api_calls=self.client.calls, **result)
        view = droplet_view(droplet)
        result.update(droplet=view, public_ipv4=view['public_ipv4'], private_ipv4=view['private_ipv4'],
                      diff=dict(before=before, after=view))
        return result

    def absent(self):
        p = self.p
        if p['name']:
            found = self.find()
            if not self.module.check_mode:
                for droplet in found:
                    self.client.delete_droplet(droplet['id'])
        else:
            found = self.client.list_droplets(tag_name=p['tag'])
            if found and not self.module.check_mode:
                self.client.delete_droplets_by_tag(p['tag'])
        return dict(changed=bool(found), removed=[d['id'] for d in found],
                    diff=dict(before={'droplets': sorted(d['name'] for d in found)}, after={'droplets': []}))


def main():
    argument_spec = digitalocean_argument_spec()
    argument_spec.update(
        name=dict(type='str'),
        tag=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        size=dict(type='str'),
        region=dict(type='str'),
        image=dict(type='str'),
        ssh_keys=dict(type='list', elements='str', default=[], no_log=False),
        tags=dict(type='list', elements='str', default=[]),
        vpc_uuid=dict(type='str'),
        user_data=dict(type='str'),
        monitoring=dict(type='bool', default=False),
        backups=dict(type='bool', default=False),
        ipv6=dict(type='bool', default=False),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=300),
        poll_interval=dict(type='float', default=5),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[('name', 'tag')],
        required_if=[('state', 'present', ('name', 'size', 'region', 'image'))],
    )
    p = module.params
    if not p['token']:
        module.fail_json(msg='DigitalOcean token missing: set the token option or the environment variable DIGITALOCEAN_TOKEN',
                         api_calls=0)
    errors = droplet_option_errors(p)
    if errors:
        module.fail_json(msg='; '.join(errors), api_calls=0)
    client = DigitalOceanClient(p['base_url'], p['token'], timeout=p['timeout'], validate_certs=p['validate_certs'])
    manager = DropletManager(module, client)
    try:
        result = manager.present() if p['state'] == 'present' else manager.absent()
    except ApiError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code, api_calls=client.calls)
    if not module._diff:
        result.pop('diff', None)
    result['api_calls'] = client.calls
    module.exit_json(**result)


if __name__ == '__main__':
    main()
