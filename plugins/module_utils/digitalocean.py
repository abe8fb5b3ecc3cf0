# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DigitalOcean API v2 client (shared by the digitalocean_* modules)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time
from urllib.parse import parse_qsl, urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.sciops.platform.plugins.module_utils.http_api import ApiClient, ApiError

API_URL = 'https://api.digitalocean.com'
PER_PAGE = 200
# The constraints of DigitalOcean's published API v2 specification (tests compare them with it):
# droplet_single_create.name, tags.name (a tag's name), droplet_create.user_data ("may not exceed 64 KiB").
NAME_PATTERN = r'^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$'
NAME_MAX_LENGTH = 255
TAG_PATTERN = r'^[a-zA-Z0-9_\-\:]+$'
TAG_MAX_LENGTH = 255
USER_DATA_MAX_BYTES = 64 * 1024


def digitalocean_argument_spec():
    return dict(
        token=dict(type='str', no_log=True, aliases=['oauth_token'],
                   fallback=(env_fallback, ['DIGITALOCEAN_TOKEN'])),
        base_url=dict(type='str', default=API_URL, fallback=(env_fallback, ['DIGITALOCEAN_API_URL'])),
        timeout=dict(type='int', default=60),
        validate_certs=dict(type='bool', default=True),
    )


class DigitalOceanClient(ApiClient):
    provider = 'DigitalOcean'

    def __init__(self, base_url, token, wall_clock=time.time, **kwargs):
        kwargs.setdefault('secrets', (token,))
        super(DigitalOceanClient, self).__init__(base_url, **kwargs)
        self._auth = 'Bearer %s' % token
        self.wall_clock = wall_clock

    def auth_headers(self):
        return {'Authorization': self._auth}

    def parse_error(self, status, data):
        if not isinstance(data, dict) or not (data.get('id') or data.get('message')):
            return None, None, []  # not DigitalOcean's {id, message}: the client shows an excerpt
        return data.get('id'), data.get('message'), []

    def retry_after(self, response):
        header = response.header('retry-after')
        if header is not None:
            try:
                return float(header)
            except ValueError:
                pass
        reset = response.header('ratelimit-reset')
        if reset is not None:
            try:
                return max(0.0, float(reset) - self.wall_clock())
            except ValueError:
                pass
        return None

    def list_all(self, path, key, query=None):
        """Every item of a paginated list (per_page=200, following links.pages.next)."""
        query = dict(query or {})
        query.setdefault('per_page', PER_PAGE)
        items = []
        while True:
            data = self.request('GET', path, query=query).data or {}
            items.extend(data.get(key) or [])
            nxt = ((data.get('links') or {}).get('pages') or {}).get('next')
            if not nxt:
                return items
            parts = urlsplit(nxt)
            path = parts.path
            query = dict(parse_qsl(parts.query))

    # --- droplets ------------------------------------------------------------------------
    def list_droplets(self, name=None, tag_name=None):
        query = {}
        if name:
            query['name'] = name
        elif tag_name:
            query['tag_name'] = tag_name
        return self.list_all('/v2/droplets', 'droplets', query)

    def get_droplet(self, droplet_id):
        return self.request('GET', '/v2/droplets/%d' % int(droplet_id)).data['droplet']

    def create_droplet(self, body):
        return self.request('POST', '/v2/droplets', body=body, expected=(202,)).data['droplet']

    def delete_droplet(self, droplet_id):
        self.request('DELETE', '/v2/droplets/%d' % int(droplet_id), expected=(204,))

    def delete_droplets_by_tag(self, tag_name):
        self.request('DELETE', '/v2/droplets', query={'tag_name': tag_name}, expected=(204,))


def _invalid(option, value, rule):
    return 'invalid value for option %s: %r %s' % (option, value, rule)


def _name_errors(option, value, max_length, pattern, what):
    """The message for a name the API refuses (too long, or outside its pattern), or none."""
    if len(value) > max_length:
        return [_invalid(option, value[:20] + '...', 'is longer than %d characters' % max_length)]
    if not re.match(pattern, value):
        return [_invalid(option, value, '%s (pattern %s)' % (what, pattern))]
    return []


def droplet_option_errors(params):
    """What the API would refuse in the droplet module's options, checked before any call: one line
    per invalid value, each naming its option. Empty when all is well."""
    errors = []
    if params.get('name') is not None:
        errors += _name_errors('name', params['name'], NAME_MAX_LENGTH, NAME_PATTERN,
                               "is not a droplet name: letters, digits, '.' and '-', ending with a letter or digit")
    tags = [('tag', params['tag'])] if params.get('tag') is not None else []
    tags += [('tags', t) for t in params.get('tags') or []]
    for option, tag in tags:
        errors += _name_errors(option, tag, TAG_MAX_LENGTH, TAG_PATTERN,
                               "is not a tag name: letters, digits, ':', '-' and '_'")
    user_data = params.get('user_data')
    if user_data is not None and len(user_data.encode('utf-8')) > USER_DATA_MAX_BYTES:
        errors.append('invalid value for option user_data: %d bytes, more than the 64 KiB DigitalOcean accepts'
                      % len(user_data.encode('utf-8')))
    return errors


def droplet_ips(droplet):
    public, private = None, None
    for net in ((droplet.get('networks') or {}).get('v4') or []):
        if net.get('type') == 'public' and public is None:
            public = net.get('ip_address')
        elif net.get('type') == 'private' and private is None:
            private = net.get('ip_address')
    return public, private


def droplet_view(droplet):
    """The attributes shown in diff and returned by the modules."""
    public, private = droplet_ips(droplet)
    image = droplet.get('image') or {}
    region = droplet.get('region') or {}
    features = droplet.get('features') or []
    return {
        'id': droplet.get('id'),
        'name': droplet.get('name'),
        'status': droplet.get('status'),
        'size': droplet.get('size_slug'),
        'region': region.get('slug'),
        'image': image.get('slug') or image.get('id'),
        'tags': sorted(droplet.get('tags') or []),
        'vpc_uuid': droplet.get('vpc_uuid'),
        'monitoring': 'monitoring' in features,
        'backups': 'backups' in features,
        'public_ipv4': public,
        'private_ipv4': private,
    }


__all__ = ['ApiError', 'DigitalOceanClient', 'droplet_ips', 'droplet_option_errors', 'droplet_view']
