"""plugins/filter/inventory_checks.py: the decisions behind playbooks/validate.yml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jinja2 import Undefined

from ansible_collections.sciops.platform.plugins.filter import inventory_checks
from ansible_collections.sciops.platform.plugins.filter.inventory_checks import (
    FilterModule, closest_variables, not_boolean_message, not_booleans, unknown_role_variables,
    unknown_variable_message)

ROOT = Path(__file__).resolve().parents[4]


def role(name, **entry_points):
    """An argument-spec document of role name: entry point -> {option: type}."""
    return {"role": name, "argument_specs": {
        entry: {"options": {option: {"type": kind, "description": option} for option, kind in options.items()}}
        for entry, options in entry_points.items()}}


PLAYBOOKS = {"argument_specs": {"playbooks": {"options": {
    "dns_domain": {"type": "str"}, "dns_records": {"type": "list"}, "dns_switch_ttl": {"type": "int"}}}}}

SPECS = [
    role("web", main={"web_root": "str", "web_enabled": "bool"}),
    role("webservice", main={"webservice_ports": "dict", "webservice_colour": "str", "webservice_state": "str",
                             "webservice_version": "str", "webservice_debug": "bool"}),
    role("acme", main={"acme_email": "str"}),
    role("acme_test_ca", main={"acme_test_ca_port": "int"}, export={"acme_test_ca_host": "str"}),
    role("postgres", main={"postgres_ssl": "bool", "postgres_port": "int"}),
    PLAYBOOKS,
]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "unknown_role_variables", "closest_variables", "unknown_variable_message", "not_booleans", "not_boolean_message"}


def test_known_names_pass_and_names_without_a_prefix_are_not_checked():
    names = ["web_root", "webservice_ports", "postgres_ssl", "sciops_environment", "ansible_user", "inventory_hostname"]
    assert unknown_role_variables(names, SPECS, ["dns"]) == []


def test_a_mapping_of_variables_is_read_by_its_names():
    assert unknown_role_variables({"web_roots": 1, "web_root": 2}, SPECS, ["dns"]) == ["web_roots"]


def test_longest_prefix_decides_the_role():
    # webservice_ports is the webservice role's (not web's, whose spec does not list it) ...
    assert unknown_role_variables(["webservice_ports", "webservice_colour"], SPECS, []) == []
    # ... and a webservice_ name web knows is still judged by webservice.
    specs = [role("web", main={"web_root": "str", "webservice_extra": "str"}), role("webservice", main={"webservice_ports": "dict"})]
    assert unknown_role_variables(["webservice_extra", "web_root"], specs, []) == ["webservice_extra"]
    # acme_test_ca_ wins over acme_: acme_test_ca_port is not refused for acme's sake, acme_test_ca_prot is.
    assert unknown_role_variables(["acme_test_ca_port", "acme_email", "acme_test_ca_prot", "acme_mail"], SPECS, []) == [
        "acme_mail", "acme_test_ca_prot"]


def test_the_order_of_the_specs_does_not_matter():
    assert unknown_role_variables(["webservice_ports", "web_ports"], list(reversed(SPECS)), []) == ["web_ports"]


def test_every_entry_point_counts():
    assert unknown_role_variables(["acme_test_ca_host", "acme_test_ca_port"], SPECS, []) == []
    main_only = [role("acme_test_ca", main={"acme_test_ca_port": "int"})]
    assert unknown_role_variables(["acme_test_ca_host"], main_only, []) == ["acme_test_ca_host"]


def test_an_entry_point_without_options_is_fine():
    specs = [{"role": "quiet", "argument_specs": {"main": {"short_description": "nothing"}, "other": None}}]
    assert unknown_role_variables(["quiet_x"], specs, []) == ["quiet_x"]


def test_dns_is_known_through_the_playbook_spec():
    names = ["dns_domain", "dns_records", "dns_switch_ttl", "dns_domian"]
    assert unknown_role_variables(names, SPECS, ["dns"]) == ["dns_domian"]
    assert unknown_role_variables(names, SPECS, ["dns_"]) == ["dns_domian"]
    assert unknown_role_variables(names, SPECS, "dns") == ["dns_domian"]
    # Without the extra prefix dns_ names are nobody's and are not checked.
    assert unknown_role_variables(names, SPECS, []) == []


def test_playbook_level_names_are_known_under_any_prefix():
    specs = [role("postgres", main={"postgres_port": "int"}),
             {"argument_specs": {"playbooks": {"options": {"postgres_restore_file": {"type": "str"}}}}}]
    assert unknown_role_variables(["postgres_restore_file", "postgres_restore_fil"], specs, []) == ["postgres_restore_fil"]


def test_vault_companions_and_internal_names_are_ignored():
    names = ["vault_postgres_nmpi_dbadmin_password", "vault_dns_godaddy_api_key", "vault_webservice_secret",
             "__validate_specs", "__dns_x", "__postgres_sslx"]
    assert unknown_role_variables(names, SPECS, ["dns"]) == []


def test_a_role_named_like_the_vault_companions_still_ignores_them():
    specs = [role("vault", main={"vault_addr": "str"}), role("postgres", main={"postgres_port": "int"})]
    assert unknown_role_variables(["vault_postgres_password", "vault_adr"], specs, []) == ["vault_adr"]


def test_bool_strings_are_refused():
    values = {"postgres_ssl": "false", "web_enabled": "yes", "webservice_debug": "true", "postgres_port": "5432"}
    assert not_booleans(values, SPECS) == ["postgres_ssl", "web_enabled", "webservice_debug"]


@pytest.mark.parametrize("value", ["true", "False", "yes", "no", "on", 1, 0, None, "", [], {}])
def test_anything_but_a_real_boolean_is_refused(value):
    assert not_booleans({"postgres_ssl": value}, SPECS) == ["postgres_ssl"]


def test_real_booleans_absent_names_and_undefined_values_pass():
    assert not_booleans({"postgres_ssl": True, "web_enabled": False}, SPECS) == []
    assert not_booleans({"sciops_environment": "local"}, SPECS) == []
    assert not_booleans({"postgres_ssl": Undefined(name="facts_not_gathered")}, SPECS) == []


def test_a_bool_of_any_entry_point_is_checked():
    specs = [role("frontdoor", main={"frontdoor_services": "list"}, switch={"frontdoor_switch_force": "bool"})]
    assert not_booleans({"frontdoor_switch_force": "true"}, specs) == ["frontdoor_switch_force"]


def test_suggestions_name_the_closest_known_names():
    assert closest_variables("webservice_prots", SPECS, []) == ["webservice_ports"]
    assert closest_variables("dns_domian", SPECS, ["dns"]) == ["dns_domain"]
    assert closest_variables("acme_test_ca_hots", SPECS, []) == ["acme_test_ca_host"]
    # Only names of the prefix are compared without it: the shared "webservice_" is no likeness.
    assert closest_variables("webservice_xyzzy", SPECS, []) == []


def test_suggestions_for_a_misspelt_prefix_compare_whole_names():
    assert closest_variables("webservce_ports", SPECS, []) == ["webservice_ports"]


def test_messages():
    assert unknown_variable_message("webservice_prots", SPECS, []) == (
        "unknown variable webservice_prots; did you mean webservice_ports?")
    assert unknown_variable_message("webservice_xyzzy", SPECS, []) == (
        "unknown variable webservice_xyzzy; no known variable is close.")
    message = not_boolean_message("postgres_ssl", {"postgres_ssl": "false"}, SPECS)
    assert message.startswith("postgres_ssl must be a boolean, not the string 'false': ")
    assert "-e '{\"postgres_ssl\": false}'" in message


def test_a_no_log_value_is_not_shown():
    specs = [{"role": "s", "argument_specs": {"main": {"options": {"s_flag": {"type": "bool", "no_log": True}}}}}]
    message = not_boolean_message("s_flag", {"s_flag": "hunter2"}, specs)
    assert "hunter2" not in message and "not the string:" in message


def test_malformed_specs_are_errors():
    with pytest.raises(inventory_checks.AnsibleFilterError):
        unknown_role_variables(["x_y"], "not a list", [])
    with pytest.raises(inventory_checks.AnsibleFilterError):
        unknown_role_variables(["x_y"], [["x"]], [])
    with pytest.raises(inventory_checks.AnsibleFilterError):
        not_booleans(["postgres_ssl"], SPECS)


def tree_specs():
    """The documents playbooks/validate.yml builds from this tree."""
    specs = [dict(yaml.safe_load(path.read_text()), role=path.parents[1].name)
             for path in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml"))]
    return specs + [yaml.safe_load((ROOT / "playbooks" / "vars" / "playbook_argument_specs.yml").read_text())]


def test_the_tree_knows_the_documented_playbook_and_export_variables():
    specs = tree_specs()
    assert len(specs) > 1 and all("argument_specs" in doc for doc in specs)
    names = ["acme_test_ca_host", "dns_domain", "dns_records", "dns_default_ttl", "dns_switch_ttl",
             "dns_godaddy_api_key", "dns_godaddy_api_secret", "dns_godaddy_base_url"]
    assert unknown_role_variables(names, specs, ["dns"]) == []
    assert unknown_role_variables(["dns_domian"], specs, ["dns"]) == ["dns_domian"]
    assert closest_variables("dns_domian", specs, ["dns"]) == ["dns_domain"]
