"""The GoDaddy record types: one list in module_utils, equal to the modules' documented choices and to the spec."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ansible_collections.sciops.platform.plugins.module_utils import godaddy as gd
from tests.servers import spec

MODULES = Path(__file__).resolve().parents[4] / "plugins" / "modules"


def documentation(module):
    """The module's DOCUMENTATION, parsed as ansible-doc reads it (without importing the module)."""
    tree = ast.parse((MODULES / ("%s.py" % module)).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["DOCUMENTATION"]:
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no DOCUMENTATION" % module)


def enum(doc, template, method, name="type"):
    for param in doc["paths"][template][method]["parameters"]:
        if param.get("in") == "path" and param["name"] == name:
            return param["enum"]
    raise AssertionError("no %s parameter in %s %s" % (name, method, template))


@pytest.fixture(scope="module")
def published():
    return spec.godaddy().doc


def test_documented_choices_are_the_module_utils_lists():
    assert documentation("godaddy_dns_record")["options"]["type"]["choices"] == list(gd.WRITABLE_RECORD_TYPES)
    assert documentation("godaddy_dns_record_info")["options"]["type"]["choices"] == list(gd.RECORD_TYPES)


def test_module_utils_lists_are_the_specs(published):
    by_name = "/v1/domains/{domain}/records/{type}/{name}"
    by_type = "/v1/domains/{domain}/records/{type}"
    assert list(gd.RECORD_TYPES) == enum(published, by_name, "get") == enum(published, by_type, "get")
    assert list(gd.RECORD_TYPES) == published["definitions"]["DNSRecord"]["properties"]["type"]["enum"]
    # The record module writes with PUT .../{type}/{name}; SOA is in that enum but is the zone's own
    # record (one, at the apex, kept by GoDaddy's name servers): the module leaves it alone.
    assert list(gd.WRITABLE_RECORD_TYPES) == [t for t in enum(published, by_name, "put") if t != "SOA"]
    assert enum(published, by_name, "put") == enum(published, by_type, "put") == list(gd.RECORD_TYPES)
    assert list(gd.DELETABLE_TYPES) == enum(published, by_name, "delete")
    assert "CAA" not in gd.RECORD_TYPES


def test_the_test_server_serves_the_same_list():
    from tests.servers import dns, godaddy
    assert list(godaddy.RECORD_TYPES) == list(gd.RECORD_TYPES)
    assert sorted(t for t in dns.TYPES if t != "OPT") == sorted(gd.RECORD_TYPES)


ROOT = MODULES.parents[1]


def test_the_inventories_dns_records_use_only_writable_types():
    """dns_records (playbooks/dns.yml) is checked by the playbook argument spec with the same list,
    and no environment's records use a type the module refuses."""
    specs = yaml.safe_load((ROOT / "playbooks" / "vars" / "playbook_argument_specs.yml").read_text())
    options = next(v for v in specs["argument_specs"].values() if "dns_records" in v["options"])["options"]
    assert options["dns_records"]["options"]["type"]["choices"] == list(gd.WRITABLE_RECORD_TYPES)
    for path in sorted(ROOT.glob("inventories/*/group_vars/all/dns.yml")):
        records = (yaml.safe_load(path.read_text()) or {}).get("dns_records") or []
        bad = [r for r in records if r.get("type") not in gd.WRITABLE_RECORD_TYPES]
        assert not bad, "%s: record types the module refuses: %s" % (path.relative_to(ROOT), bad)
