# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  api_key:
    description:
      - GoDaddy API key.
      - If not set, the environment variable E(GODADDY_API_KEY) is used.
      - Keys for the OTE sandbox and for production are different.
    type: str
  api_secret:
    description:
      - GoDaddy API secret belonging to O(api_key).
      - If not set, the environment variable E(GODADDY_API_SECRET) is used.
    type: str
  base_url:
    description:
      - Base URL of the GoDaddy API.
      - V(https://api.godaddy.com) is production, V(https://api.ote-godaddy.com) the OTE sandbox.
      - If not set, the environment variable E(GODADDY_API_URL) is used, then the default.
    type: str
    default: https://api.godaddy.com
  timeout:
    description:
      - Seconds one API operation may take, retries included. Rate-limit waits (HTTP 429,
        for the time the API asks in C(retryAfterSec)), server errors (5xx) and connection
        errors (capped exponential backoff) are retried within this time.
    type: int
    default: 60
  validate_certs:
    description:
      - Verify the API server's TLS certificate.
    type: bool
    default: true
notes:
  - GoDaddy restricts its DNS API to accounts with a minimum number of domains or a paid plan;
    other accounts get HTTP 403 C(ACCESS_DENIED). The OTE sandbox works for testing.
  - The API allows about 60 requests a minute.
'''
