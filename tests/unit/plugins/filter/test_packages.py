"""plugins/filter/packages.py: the dpkg check that lets a no-op skip apt, and never skips a
missing or half-installed package."""
from __future__ import annotations

import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sciops.platform.plugins.filter.packages import FilterModule, dpkg_query_argv, missing_packages


def test_argv_asks_for_status_and_name_of_each_package():
    argv = dpkg_query_argv(["nginx", "openssl"])
    assert argv[:2] == ["dpkg-query", "--show"]
    assert argv[2] == "--showformat=${db:Status-Abbrev} ${Package}\\n"
    assert argv[3:] == ["nginx", "openssl"]


@pytest.mark.parametrize("bad", ["nginx", ["nginx", ""], [None]])
def test_argv_refuses_what_is_not_a_list_of_names(bad):
    with pytest.raises(AnsibleFilterError, match="list of package names"):
        dpkg_query_argv(bad)


def test_only_ii_counts_as_installed():
    out = "ii  nginx\nrc  openssl\niU  acl\niF  sudo\nii  libc6\n"
    assert missing_packages(out, ["nginx", "openssl", "acl", "sudo", "libc6", "git"]) == ["openssl", "acl", "sudo", "git"]


def test_nothing_missing_when_every_name_is_installed():
    assert missing_packages("ii  nginx\nii  openssl\n", ["nginx", "openssl"]) == []


def test_empty_output_means_all_missing():
    assert missing_packages("", ["nginx"]) == ["nginx"]
    assert missing_packages(None, ["nginx"]) == ["nginx"]


def test_architecture_and_version_qualifiers_compare_by_name():
    assert missing_packages("ii  libc6\n", ["libc6:amd64", "libc6=2.36-9"]) == []
    assert missing_packages("ii  libc6:amd64\n", ["libc6"]) == []


def test_real_dpkg_query_output_is_understood():
    # the checks run on a Debian machine (README); its own dpkg answers like a node's
    run = subprocess.run(dpkg_query_argv(["dpkg", "no-such-package-sciops"]), capture_output=True, text=True, check=False)
    assert run.returncode == 1  # one name unknown: the role's check ignores the status and reads the lines
    assert missing_packages(run.stdout, ["dpkg", "no-such-package-sciops"]) == ["no-such-package-sciops"]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"dpkg_query_argv", "missing_packages"}
