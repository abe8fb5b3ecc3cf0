# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  token:
    description:
      - "DigitalOcean API token (sent as C(Authorization: Bearer TOKEN))."
      - If not set, the environment variable E(DIGITALOCEAN_TOKEN) is used.
    type: str
    aliases: [oauth_token]
  base_url:
    description:
      - Base URL of the DigitalOcean API.
      - If not set, the environment variable E(DIGITALOCEAN_API_URL) is used, then the default.
    type: str
    default: https://api.digitalocean.com
  timeout:
    description:
      - Seconds one API operation may take, retries included. Rate-limit waits (HTTP 429, for
        the time the API asks in C(retry-after) or until C(ratelimit-reset)), server errors
        (5xx) and connection errors (capped exponential backoff) are retried within this time.
    type: int
    default: 60
  validate_certs:
    description:
      - Verify the API server's TLS certificate.
    type: bool
    default: true
notes:
  - The API allows 5,000 requests an hour and 250 a minute.
'''
