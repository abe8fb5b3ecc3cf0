"""Filters for the no-op fast path of package installs: ask dpkg which packages are installed
(one dpkg-query, milliseconds) and run apt (which opens its whole cache, about half a second)
only when one is missing."""
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_INSTALLED = re.compile(r"^ii\s+(\S+)")


def dpkg_query_argv(names):
    """The dpkg-query command line that prints '<status> <package>' for each of names."""
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise AnsibleFilterError(f"dpkg_query_argv expects a list of package names, got {names!r}")
    return ["dpkg-query", "--show", "--showformat=${db:Status-Abbrev} ${Package}\\n"] + [str(n) for n in names]


def missing_packages(dpkg_stdout, names):
    """The names that dpkg does not report as installed ('ii'); unknown names count as missing.
    A name with an architecture or version qualifier is compared by its package name."""
    installed = set()
    for line in (dpkg_stdout or "").splitlines():
        match = _INSTALLED.match(line)
        if match:
            installed.add(match.group(1).split(":")[0])
    return [n for n in names if re.split(r"[:=]", str(n))[0] not in installed]


class FilterModule(object):
    def filters(self):
        return {"dpkg_query_argv": dpkg_query_argv, "missing_packages": missing_packages}
