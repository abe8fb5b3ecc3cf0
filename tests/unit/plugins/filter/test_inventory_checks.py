"""plugins/filter/inventory_checks.py: the decisions behind playbooks/validate.yml."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jinja2 import Undefined

from ansible_collections.sciops.platform.plugins.filter import inventory_checks
from ansible_collections.sciops.platform.plugins.filter.inventory_checks import (
    FilterModule, closest_variables, inventory_errors, not_boolean_message, not_booleans, type_errors,
    unknown_role_variables, unknown_variable_message, wrong_type_message, wrong_types)

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
        "unknown_role_variables", "closest_variables", "unknown_variable_message", "not_booleans", "not_boolean_message",
        "type_errors", "wrong_types", "wrong_type_message", "inventory_errors"}


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
    assert not_boolean_message("postgres_ssl", {"postgres_ssl": "false"}, SPECS) == (
        "postgres_ssl must be a boolean; got the string 'false' (with -e key=value every value is a string:"
        " pass JSON, -e '{\"postgres_ssl\": false}')")


def test_a_no_log_value_is_not_shown():
    specs = [{"role": "s", "argument_specs": {"main": {"options": {"s_flag": {"type": "bool", "no_log": True}}}}}]
    message = not_boolean_message("s_flag", {"s_flag": "hunter2"}, specs)
    assert "hunter2" not in message and message.startswith("s_flag must be a boolean; got a string (")


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


# The type checks: one line each, naming the variable, what it got and the fix.

TYPED = [
    role("postgres", main={"postgres_ssl": "bool", "postgres_port": "int", "postgres_databases": "list",
                           "postgres_settings": "dict", "postgres_version": "str", "postgres_data_dir": "path",
                           "postgres_ratio": "float", "postgres_extra": "raw"}),
    {"role": "le", "argument_specs": {"main": {"options": {
        "le_key_type": {"type": "str", "choices": ["ecdsa", "rsa"]},
        "le_key_size": {"type": "int", "choices": [2048, 4096]},
        "le_names": {"type": "list", "elements": "str", "choices": ["a", "b"]},
        "le_ports": {"type": "list", "elements": "int"},
        "le_secret": {"type": "int", "no_log": True},
        "le_certs": {"type": "list", "elements": "dict", "options": {
            "name": {"type": "str", "required": True}, "ttl": {"type": "int"}, "solo": {"type": "bool"},
            "state": {"type": "str", "choices": ["present", "absent"]}}},
        "le_hook": {"type": "dict", "options": {"timeout": {"type": "int"}}}}}}},
    {"argument_specs": {"playbooks": {"options": {
        "renew_force": {"type": "bool"}, "lines": {"type": "int"}, "colour": {"type": "str", "choices": ["blue", "green"]},
        "le_key_size": {"type": "int"}}}}},
]


def test_the_messages_of_the_finding():
    assert type_errors({"postgres_port": "5433"}, TYPED) == [
        "postgres_port must be an integer; got the string '5433' (with -e key=value every value is a string:"
        " pass JSON, -e '{\"postgres_port\": 5433}')"]
    assert type_errors({"postgres_ssl": "false"}, TYPED) == [
        "postgres_ssl must be a boolean; got the string 'false' (with -e key=value every value is a string:"
        " pass JSON, -e '{\"postgres_ssl\": false}')"]


JSON = "(with -e key=value every value is a string: pass JSON, -e "


@pytest.mark.parametrize("name, value, expected", [
    ("postgres_port", "abc", "postgres_port must be an integer; got the string 'abc' " + JSON + "'{\"postgres_port\": 1}')"),
    ("postgres_port", True, "postgres_port must be an integer; got the boolean True"),
    ("postgres_port", 54.5, "postgres_port must be an integer; got the number 54.5"),
    ("postgres_port", [5432], "postgres_port must be an integer; got a list"),
    ("postgres_ratio", "0.5", "postgres_ratio must be a number; got the string '0.5' " + JSON + "'{\"postgres_ratio\": 0.5}')"),
    ("postgres_databases", "a, b", "postgres_databases must be a list; got the string 'a, b' " + JSON + "'{\"postgres_databases\": [\"a\", \"b\"]}')"),
    ("postgres_databases", '["a"]', "postgres_databases must be a list; got the string '[\"a\"]' " + JSON + "'{\"postgres_databases\": [\"a\"]}')"),
    ("postgres_databases", {"a": 1}, "postgres_databases must be a list; got a mapping"),
    ("postgres_settings", "x=1", "postgres_settings must be a mapping; got the string 'x=1' " + JSON + "'{\"postgres_settings\": {}}')"),
    ("postgres_settings", [], "postgres_settings must be a mapping; got a list"),
    ("postgres_version", True, "postgres_version must be a string; got the boolean True"),
    ("postgres_version", ["16"], "postgres_version must be a string; got a list"),
    ("postgres_data_dir", {}, "postgres_data_dir must be a string (a path); got a mapping"),
    ("postgres_ssl", 1, "postgres_ssl must be a boolean; got the integer 1 (write true or false without quotes)"),
    ("postgres_ssl", None, "postgres_ssl must be a boolean; got null (write true or false without quotes)"),
])
def test_a_value_of_the_wrong_type_is_one_line(name, value, expected):
    assert type_errors({name: value}, TYPED) == [expected]
    assert wrong_types({name: value}, TYPED) == [name]
    assert wrong_type_message(name, {name: value}, TYPED) == expected
    assert "\n" not in expected


@pytest.mark.parametrize("name, value", [
    ("postgres_port", 5433), ("postgres_ssl", False), ("postgres_ratio", 1), ("postgres_ratio", 0.5),
    ("postgres_databases", []), ("postgres_databases", ("a",)), ("postgres_settings", {}),
    ("postgres_version", "16"), ("postgres_version", 16), ("postgres_version", 16.2),  # a number where a string belongs: Ansible converts it
    ("postgres_data_dir", "/srv"), ("postgres_extra", "anything"), ("postgres_extra", ["x"]),
    ("postgres_port", None), ("postgres_databases", None),  # null is "not set"
    ("postgres_port", "{{ vault_postgres_port }}"), ("postgres_ssl", "{{ x }}"),  # computed: the role's own validation's
    ("postgres_port", Undefined(name="facts_not_gathered")), ("sciops_environment", "local"),
])
def test_values_that_fit_pass(name, value):
    assert type_errors({name: value}, TYPED) == []
    assert wrong_type_message(name, {name: value}, TYPED) == ""


def test_choices():
    assert type_errors({"le_key_type": "dsa"}, TYPED) == ["le_key_type must be one of ecdsa, rsa; got the string 'dsa'"]
    assert type_errors({"le_key_type": "rsa", "le_names": ["a", "b"]}, TYPED) == []
    assert type_errors({"le_names": ["a", "c"]}, TYPED) == ["le_names must be a list of a, b; got the string 'c'"]
    # The type comes first: "2048" is refused as a string, not as a missing choice.
    assert type_errors({"le_key_size": "2048"}, TYPED)[0].startswith("le_key_size must be an integer; got the string '2048'")
    assert type_errors({"le_key_size": 1024}, TYPED) == ["le_key_size must be one of 2048, 4096; got the integer 1024"]


def test_list_elements_and_suboptions():
    assert type_errors({"le_ports": [80, "443"]}, TYPED) == [
        "le_ports[1] must be an integer; got the string '443' (write it without quotes)"]
    certs = [{"name": "a", "ttl": 600}, {"name": "b", "ttl": "600", "solo": "yes"}]
    assert type_errors({"le_certs": certs}, TYPED) == ["le_certs[1].solo must be a boolean; got the string 'yes' (write it without quotes)"]
    assert type_errors({"le_certs": [{"name": "a", "state": "gone"}]}, TYPED) == [
        "le_certs[0].state must be one of present, absent; got the string 'gone'"]
    assert type_errors({"le_certs": ["a"]}, TYPED) == ["le_certs[0] must be a mapping; got the string 'a' (write it without quotes)"]
    assert type_errors({"le_hook": {"timeout": "30"}}, TYPED) == ["le_hook.timeout must be an integer; got the string '30' (write it without quotes)"]
    assert type_errors({"le_certs": [{"name": "a", "ttl": "{{ ttl }}"}], "le_hook": {"other": "x"}}, TYPED) == []


def test_a_no_log_value_is_never_shown():
    message = type_errors({"le_secret": "hunter2"}, TYPED)[0]
    assert "hunter2" not in message and message.startswith("le_secret must be an integer; got a string (")


def test_playbook_level_variables_accept_strings_that_convert():
    # The playbooks convert these themselves (| bool, | int): -e renew_force=true, -e lines=200 are fine ...
    assert type_errors({"renew_force": "true", "lines": "200"}, TYPED) == []
    assert type_errors({"renew_force": "No", "lines": " 7 "}, TYPED) == []
    # ... a string that does not convert is refused ...
    assert type_errors({"renew_force": "ture"}, TYPED) == [
        "renew_force must be a boolean; got the string 'ture' (with -e key=value every value is a string:"
        " pass JSON, -e '{\"renew_force\": true}')"]
    assert type_errors({"lines": "many"}, TYPED)[0].startswith("lines must be an integer; got the string 'many'")
    assert type_errors({"colour": "red"}, TYPED) == ["colour must be one of blue, green; got the string 'red'"]
    # ... and a name a role reads too is as strict as the role's own inputs.
    assert type_errors({"le_key_size": "2048"}, TYPED)[0].startswith("le_key_size must be an integer")


def test_not_booleans_is_unchanged_by_the_playbook_leniency():
    assert not_booleans({"renew_force": "true", "postgres_ssl": "no"}, TYPED) == ["postgres_ssl", "renew_force"]


def test_a_value_that_cannot_be_read_is_left_to_the_role():
    class Failing(dict):
        def __getitem__(self, key):
            raise RuntimeError("needs facts")
    assert type_errors(Failing(postgres_port=1), TYPED) == []


class HostVars(dict):
    """hostvars as Ansible passes them: raw_get gives the untemplated variables; templating one
    (hostvars[host][name]) is counted."""

    def __init__(self, raw, rendered):
        super().__init__()
        self.raw, self.rendered, self.templated = raw, rendered, []

    def raw_get(self, host):
        return self.raw[host]

    def __getitem__(self, host):
        outer = self

        class Vars(dict):
            def __getitem__(self, name):
                outer.templated.append((host, name))
                return outer.rendered[host][name]
        return Vars(self.raw[host])


def test_inventory_errors_gives_a_shared_problem_once_and_names_the_hosts_of_the_others():
    raw = {"db1": {"postgres_port": "5433", "postgres_prot": 1}, "app1": {"postgres_port": "5433"}}
    assert inventory_errors(raw, ["db1", "app1"], TYPED, []) == [
        "db1: unknown variable postgres_prot; did you mean postgres_port? (a new input belongs in its role's"
        " meta/argument_specs.yml, or in playbooks/vars/playbook_argument_specs.yml)",
        "postgres_port must be an integer; got the string '5433' (with -e key=value every value is a string:"
        " pass JSON, -e '{\"postgres_port\": 5433}')"]
    assert inventory_errors({"db1": {"postgres_port": 5432}}, "db1", TYPED, []) == []


def test_inventory_errors_templates_only_scalar_templates():
    raw = {"db1": {"postgres_port": "{{ vault_port }}", "postgres_databases": "{{ expensive }}", "postgres_ssl": "{{ flag }}"}}
    rendered = {"db1": {"postgres_port": "5433", "postgres_databases": "not a list", "postgres_ssl": True}}
    hostvars = HostVars(raw, rendered)
    errors = inventory_errors(hostvars, ["db1"], TYPED, [])
    assert [line.split(";")[0] for line in errors] == ["postgres_port must be an integer"]
    assert sorted(hostvars.templated) == [("db1", "postgres_port"), ("db1", "postgres_ssl")]


def test_the_tree_passes_its_own_inventories_literal_values():
    specs = tree_specs()
    for inventory in ("local", "staging", "production"):
        for path in sorted((ROOT / "inventories" / inventory).glob("**/*.yml")):
            data = yaml.safe_load(path.read_text()) or {}
            if path.name == "hosts.yml" or not isinstance(data, dict) or "$ANSIBLE_VAULT" in path.read_text()[:20]:
                continue
            assert type_errors(data, specs) == [], path
