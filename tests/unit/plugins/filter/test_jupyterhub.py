"""plugins/filter/jupyterhub.py: the hierarchy's merge, the preflight's messages, and the
single-host settings (authenticator, spawner limits, culler flags and scopes, clean-up)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.sciops.platform.plugins.filter.jupyterhub import (
    AnsibleFilterError, deep_merge, jupyterhub_auth_traits, jupyterhub_culler_args, jupyterhub_culler_scopes,
    jupyterhub_deployments, jupyterhub_firewall_rules, jupyterhub_frontdoor_catalogue, jupyterhub_frontdoor_services,
    jupyterhub_env_pip_job, jupyterhub_problems, jupyterhub_secret_env,
    jupyterhub_redacted, jupyterhub_settings, jupyterhub_summary, jupyterhub_user_envs)
from tests.jupyterhub.hierarchy import layers, merged

PATHS = {"state_dir": "/var/lib/jupyterhub/x", "venv": "/opt/jupyterhub/hub",
         "user_venv": "/opt/jupyterhub/envs/default", "proxy_api_url": "http://127.0.0.1:8001"}


def one(entry, **layers_):
    return jupyterhub_deployments([entry], **layers_)[0]


def github(**auth):
    base = {"client_id": "id", "client_secret": "s3cret", "allowed_organizations": ["org"]}
    base.update(auth)
    return {"name": "private", "profile": "private", "server_name": "p.test", "auth": base}


# --- the merge ----------------------------------------------------------------------------------

def test_deep_merge_merges_mappings_and_replaces_lists():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    out = deep_merge(base, {"a": {"c": [3], "e": 2}})
    assert out == {"a": {"b": 1, "c": [3], "e": 2}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}, "the input is left unchanged"


def test_layers_apply_in_the_hierarchy_order():
    # defaults < profile < common < deployment < environment < vault
    entry = {"name": "hub", "profile": "public", "cull": {"timeout": 900}}
    tree = one(entry, common={"cull": {"timeout": 700, "every": 30}, "spawner": {"mem_limit": "2G"}},
               environment={"hub": {"spawner": {"mem_limit": "3G"}}},
               secrets={"hub": {"spawner": {"mem_limit": "4G"}}})
    assert tree["cull"]["timeout"] == 900, "the deployment beats common"
    assert tree["cull"]["every"] == 30, "common beats the profile (60)"
    assert tree["cull"]["max_age"] == 28800, "the profile beats the defaults (0)"
    assert tree["spawner"]["mem_limit"] == "4G", "the vault's layer comes last"
    assert tree["spawner"]["cpu_limit"] == 1.0, "untouched defaults stay"


def test_environment_and_vault_layers_are_per_deployment():
    trees = merged()
    assert trees["private"]["server_name"] == "private.staging.hub.test"
    assert trees["private"]["spawner"]["mem_limit"] == "2G"
    assert trees["public"]["spawner"]["mem_limit"] == "1G"
    assert trees["private"]["auth"]["client_secret"] == "test-client-secret-not-real"
    assert trees["public"]["auth"]["client_secret"] == ""


def test_profiles_of_the_two_hubs():
    trees = merged()
    public, private = trees["public"], trees["private"]
    assert public["auth"]["type"] == "tmp" and public["storage"]["type"] == "none"
    assert public["cull"] == {"enabled": True, "timeout": 600, "every": 60, "max_age": 28800, "users": True,
                              "concurrency": 10}
    assert private["auth"]["type"] == "github" and private["storage"]["type"] == "persistent"
    assert private["cull"]["timeout"] == 1800 and private["cull"]["users"] is False
    assert private["keep_servers_on_restart"] is True


def test_extra_profiles_from_the_inventory():
    tree = jupyterhub_deployments([{"name": "x", "profile": "course"}],
                                  profiles={"course": {"cull": {"timeout": 1200}}})[0]
    assert tree["cull"]["timeout"] == 1200
    assert jupyterhub_problems([tree], profiles={"course": {}}) == []


def test_ansible_containers_become_plain_data():
    class Lazy(dict):
        pass
    tree = jupyterhub_deployments([Lazy(name="a")], common=Lazy())[0]
    # a plain dict, not a subclass of one: the exact type is the point
    assert type(tree["auth"]) is dict  # pylint: disable=unidiomatic-typecheck
    json.dumps(tree)


@pytest.mark.parametrize("value,layer", [("x", "jupyterhub_deployments"), ({"a": 1}, "jupyterhub_deployments")])
def test_deployments_must_be_a_list(value, layer):
    with pytest.raises(AnsibleFilterError, match=layer):
        jupyterhub_deployments(value)


def test_a_layer_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="jupyterhub_environment must be a mapping"):
        jupyterhub_deployments([{"name": "a"}], environment=["x"])


# --- the preflight ------------------------------------------------------------------------------

def test_the_example_hierarchy_passes():
    assert jupyterhub_problems(list(merged().values())) == []


def test_github_with_nobody_allowed_names_the_variable_and_the_fix():
    problems = jupyterhub_problems([one(github(allowed_organizations=[]))])
    assert problems == [
        "jupyterhub_deployments[private].auth: github login with nobody allowed (JupyterHub 5 and oauthenticator fail "
        "closed): set jupyterhub_deployments[private].auth.allowed_users or "
        "jupyterhub_deployments[private].auth.allowed_organizations."]


def test_allow_all_is_only_for_tmp():
    problems = jupyterhub_problems([one(github(allow_all=True))])
    assert len(problems) == 1
    assert "auth.allow_all is true with auth.type github: allow_all is only for tmp" in problems[0]


def test_a_string_where_a_boolean_belongs():
    problems = jupyterhub_problems([one(github(allow_all="false"))])
    assert problems == ["jupyterhub_deployments[private].auth.allow_all must be true or false (a boolean, not a "
                        "string), got 'false'."]


def test_oauth_needs_its_client_secret_from_the_vault():
    problems = jupyterhub_problems([one(github(client_secret=""))])
    assert problems == ["jupyterhub_deployments[private].auth.client_secret is empty: set it (the secret from the "
                        "vault, jupyterhub_secrets.private.auth.client_secret)."]


def test_generic_oauth_needs_the_provider_urls_and_an_allow_rule():
    entry = {"name": "oidc", "server_name": "o.test", "storage": {"type": "persistent"},
             "auth": {"type": "generic", "client_id": "c", "client_secret": "s"}}
    problems = jupyterhub_problems([one(entry)])
    assert any("auth.authorize_url is empty" in p for p in problems)
    assert any("auth.token_url is empty" in p for p in problems)
    assert any("set jupyterhub_deployments[oidc].auth.allowed_users or jupyterhub_deployments[oidc].auth.allowed_groups"
               in p for p in problems)


def test_a_misspelt_key_is_named():
    problems = jupyterhub_problems([one({"name": "public", "profile": "public", "cul": {"timeout": 1},
                                         "spawner": {"mem_limt": "1G"}})])
    assert "jupyterhub_deployments[public].cul is not a setting of the jupyterhub role (misspelt?); see " \
           "roles/jupyterhub/defaults/main.yml." in problems
    assert any(p.startswith("jupyterhub_deployments[public].spawner.mem_limt is not a setting") for p in problems)


def test_two_hubs_on_one_host_need_their_own_names_and_ports():
    a = {"name": "a", "profile": "public", "server_name": "a.test"}
    b = {"name": "a", "profile": "public", "server_name": "a.test"}
    problems = jupyterhub_problems(jupyterhub_deployments([a, b]))
    assert any("two deployments are named 'a'" in p for p in problems)
    assert any("port 8000 is already used by jupyterhub_deployments[a].port" in p for p in problems)
    assert any("server_name a.test is also" in p for p in problems)


@pytest.mark.parametrize("name", ["Public", "1hub", "hub_one", "a" * 21, ""])
def test_names_that_cannot_name_units(name):
    problems = jupyterhub_problems([one({"name": name, "profile": "public"})])
    assert any(".name must be a short lower-case name" in p for p in problems)


def test_limits_and_cull_values_are_checked():
    entry = {"name": "p", "profile": "public", "spawner": {"mem_limit": "lots", "cpu_limit": "2"},
             "cull": {"timeout": "600"}}
    problems = jupyterhub_problems([one(entry)])
    assert any("spawner.mem_limit must be a size" in p for p in problems)
    assert any("spawner.cpu_limit must be a number of CPUs" in p for p in problems)
    assert any("cull.timeout must be a whole number of seconds" in p for p in problems)


def test_root_in_user_servers_is_refused():
    problems = jupyterhub_problems([one({"name": "p", "profile": "public", "spawner": {"disable_user_sudo": False}})])
    assert problems == ["jupyterhub_deployments[p].spawner.disable_user_sudo is false: user servers run without "
                        "root; keep it true."]


def test_temporary_accounts_have_no_storage():
    problems = jupyterhub_problems([one({"name": "p", "profile": "public", "storage": {"type": "persistent"}})])
    assert any("storage.type persistent with auth.type tmp" in p for p in problems)


def test_one_user_env_name_one_package_list():
    a = {"name": "a", "profile": "public", "user_env": {"name": "sci", "packages": ["numpy"]}}
    b = {"name": "b", "profile": "public", "port": 8100, "proxy_api_port": 8101, "hub_port": 8181,
         "user_env": {"name": "sci", "packages": ["scipy"]}}
    problems = jupyterhub_problems(jupyterhub_deployments([a, b]))
    assert any("the environment 'sci' is also jupyterhub_deployments[a]'s with other packages" in p for p in problems)


def test_kubernetes_mode_refuses_pam():
    entry = {"name": "p", "storage": {"type": "persistent"}, "auth": {"type": "pam", "allowed_users": ["a"]}}
    assert jupyterhub_problems([one(entry)]) == []
    assert any("auth.type pam needs the node's accounts" in p for p in jupyterhub_problems([one(entry)], "kubernetes"))


def test_an_absent_deployment_needs_only_its_name():
    tree = one({"name": "old", "state": "absent", "auth": {"type": "github"}})
    assert jupyterhub_problems([tree]) == []


# --- the single-host rendering ------------------------------------------------------------------

def test_tmp_is_the_only_login_with_allow_all():
    trees = merged()
    public = jupyterhub_auth_traits(trees["public"])
    assert public["JupyterHub"]["authenticator_class"] == "tmp"
    assert public["Authenticator"]["allow_all"] is True
    private = jupyterhub_auth_traits(trees["private"])
    assert private["Authenticator"]["allow_all"] is False
    assert private["GitHubOAuthenticator"] == {
        "client_id": "test-client-id", "oauth_callback_url": "https://private.staging.hub.test/hub/oauth_callback",
        "allowed_organizations": ["tess-research"], "scope": ["read:org"]}
    assert private["Authenticator"]["admin_users"] == ["hub-admin"]


def test_github_url_points_at_another_github():
    traits = jupyterhub_auth_traits(one(github(github_url="http://127.0.0.1:9999")))
    assert traits["GitHubOAuthenticator"]["github_url"] == "http://127.0.0.1:9999"


def test_generic_oauth_traits():
    entry = {"name": "oidc", "server_name": "o.test", "storage": {"type": "persistent"},
             "auth": {"type": "generic", "client_id": "c", "client_secret": "s", "allowed_groups": ["lab"],
                      "authorize_url": "https://idp/auth", "token_url": "https://idp/token",
                      "userdata_url": "https://idp/userinfo", "login_service": "EBRAINS"}}
    traits = jupyterhub_auth_traits(one(entry))
    assert traits["JupyterHub"]["authenticator_class"] == "generic-oauth"
    own = traits["GenericOAuthenticator"]
    assert own["allowed_groups"] == ["lab"] and own["manage_groups"] is True
    assert own["auth_state_groups_key"] == "oauth_user.groups"
    assert "client_secret" not in own, "the secret goes through the environment file only"
    assert jupyterhub_secret_env(one(entry)) == {"JUPYTERHUB_OAUTH_CLIENT_SECRET": "s"}


def test_secret_env_of_a_tmp_hub_is_empty():
    assert jupyterhub_secret_env(merged()["public"]) == {}


def test_culler_flags_are_in_name_value_form():
    trees = merged()
    assert jupyterhub_culler_args(trees["public"]) == [
        "--timeout=600", "--cull-every=60", "--concurrency=10", "--max-age=28800", "--cull-users=True"]
    assert jupyterhub_culler_args(trees["private"]) == [
        "--timeout=1800", "--cull-every=300", "--concurrency=10", "--cull-users=False"]
    for args in map(jupyterhub_culler_args, trees.values()):
        assert all("=" in a for a in args), "no bare boolean flag (idle-culler 2.0 refuses them)"


def test_culler_scopes_are_the_least_it_needs():
    trees = merged()
    assert jupyterhub_culler_scopes(trees["private"]) == [
        "list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert jupyterhub_culler_scopes(trees["public"])[-1] == "admin:users"
    for scopes in map(jupyterhub_culler_scopes, trees.values()):
        assert "admin" not in scopes


def test_settings_of_the_public_hub():
    settings = jupyterhub_settings(merged()["public"], PATHS)
    sp = settings["traits"]["SystemdSpawner"]
    assert sp["mem_limit"] == "1G" and sp["cpu_limit"] == 1.0
    assert sp["isolate_tmp"] and sp["isolate_devices"] and sp["disable_user_sudo"]
    assert sp["dynamic_users"] is True
    assert sp["unit_name_template"] == "jupyter-public-{USERNAME}"
    assert settings["traits"]["Spawner"]["default_url"] == "/lab"
    assert settings["traits"]["Spawner"]["cmd"] == ["/opt/jupyterhub/envs/default/bin/jupyterhub-singleuser"]
    hub = settings["traits"]["JupyterHub"]
    assert hub["cookie_secret_file"] == "/var/lib/jupyterhub/x/jupyterhub_cookie_secret"
    assert hub["cleanup_servers"] is False
    assert settings["traits"]["ConfigurableHTTPProxy"] == {"should_start": False, "api_url": "http://127.0.0.1:8001"}
    assert settings["delete_state_dirs"] is True and settings["system_users"] is None
    assert settings["services"][0]["command"][:3] == ["/opt/jupyterhub/hub/bin/python3", "-m", "jupyterhub_idle_culler"]
    assert settings["roles"] == [{"name": "idle-culler", "services": ["idle-culler"], "scopes": [
        "list:users", "read:users:activity", "read:servers", "delete:servers", "admin:users"]}]
    assert "test-client-secret" not in json.dumps(settings)


def test_settings_of_the_private_hub():
    settings = jupyterhub_settings(merged()["private"], PATHS)
    sp = settings["traits"]["SystemdSpawner"]
    assert sp["dynamic_users"] is False
    assert sp["username_template"] == "jupyter-{USERNAME}"
    assert sp["user_workingdir"] == "/home/jupyter-{USERNAME}"
    assert settings["system_users"] == {"prefix": "jupyter-", "home_base": "/home"}
    assert settings["delete_state_dirs"] is False
    assert settings["secret_env"] == {"JUPYTERHUB_OAUTH_CLIENT_SECRET": "GitHubOAuthenticator.client_secret"}
    assert "test-client-secret-not-real" not in json.dumps(settings), "settings.json holds no secret"


def test_shared_data_is_read_only_for_users():
    settings = jupyterhub_settings(one({"name": "p", "profile": "public", "shared_data": {"path": "/srv/data"}}), PATHS)
    assert settings["traits"]["SystemdSpawner"]["readonly_paths"] == ["/srv/data"]


def test_hub_config_adds_traits_last():
    hub_config = {"Spawner": {"default_url": "/tree"}, "JupyterHub": {"shutdown_on_logout": True}}
    entry = {"name": "p", "profile": "public", "hub_config": hub_config}
    traits = jupyterhub_settings(one(entry), PATHS)["traits"]
    assert traits["Spawner"]["default_url"] == "/tree"
    assert traits["JupyterHub"]["shutdown_on_logout"] is True
    assert traits["JupyterHub"]["authenticator_class"] == "tmp"


def test_no_culler_when_culling_is_off():
    settings = jupyterhub_settings(one({"name": "p", "cull": {"enabled": False}}), PATHS)
    assert settings["services"] == [] and settings["roles"] == []


def test_frontdoor_entries_one_port_both_colours():
    entries = jupyterhub_frontdoor_services(list(merged().values()), "mol-jh-hub")
    assert [e["name"] for e in entries] == ["jupyterhub_public", "jupyterhub_private"]
    public = entries[0]
    assert public["ports"] == {"blue": 8000, "green": 8000}
    assert public["upstream"] == ["127.0.0.1"] and public["host_list"] == ["mol-jh-hub"]
    assert public["server_name"] == "public.hub.test"
    assert public["health_path"] == "/hub/health"


def _hub_vars(bind_ip="127.0.0.1", **extra):
    hv = {"jupyterhub_deployments": [{"name": "public", "profile": "public", "server_name": "hub.test"},
                                     {"name": "private", "profile": "private", "server_name": "lab.test",
                                      "port": 8010, "proxy_api_port": 8011, "hub_port": 8091,
                                      "auth": {"client_id": "id", "allowed_organizations": ["org"]}},
                                     {"name": "off", "state": "absent", "server_name": "off.test", "port": 8020}],
          "jupyterhub_common": {"bind_ip": bind_ip},
          # The vault's layer is never read for the front door: a broken one changes nothing.
          "jupyterhub_secrets": "not even a mapping"}
    hv.update(extra)
    return hv


def test_catalogue_serves_each_present_hub_from_the_inventory_alone():
    entries = jupyterhub_frontdoor_catalogue(["hub1"], {"hub1": _hub_vars()}, ["hub1"])
    assert [(e["server_name"], e["upstream"], e["ports"]["blue"]) for e in entries] == [
        ("hub.test", ["127.0.0.1"], 8000), ("lab.test", ["127.0.0.1"], 8010)]
    assert "client_secret" not in json.dumps(entries)


def test_catalogue_proxies_to_the_hub_node_when_the_front_door_is_elsewhere():
    entries = jupyterhub_frontdoor_catalogue(["hub1"], {"hub1": _hub_vars("10.0.0.31")}, ["web1"])
    assert {e["upstream"][0] for e in entries} == {"10.0.0.31"}
    assert entries[0]["host_list"] == ["hub1"]


def test_catalogue_refuses_a_loopback_hub_behind_another_node():
    with pytest.raises(AnsibleFilterError, match=r"hub1: jupyterhub_deployments\[public\].bind_ip is 127.0.0.1 .*web1"):
        jupyterhub_frontdoor_catalogue(["hub1"], {"hub1": _hub_vars()}, ["web1"])


def test_catalogue_refuses_every_address_and_a_name_served_twice():
    with pytest.raises(AnsibleFilterError, match="0.0.0.0 would expose"):
        jupyterhub_frontdoor_catalogue(["hub1"], {"hub1": _hub_vars("0.0.0.0")}, ["web1"])
    hosts = {"hub1": _hub_vars("10.0.0.31"), "hub2": _hub_vars("10.0.0.32")}
    with pytest.raises(AnsibleFilterError, match="hub.test is also served"):
        jupyterhub_frontdoor_catalogue(["hub1", "hub2"], hosts, ["web1"])


def test_catalogue_skips_kubernetes_hubs_and_names_entries_apart_per_node():
    hub2 = _hub_vars("10.0.0.32")
    hub2["jupyterhub_deployments"] = [{"name": "public", "profile": "public", "server_name": "hub2.test"}]
    hosts = {"hub1": _hub_vars("10.0.0.31"), "hub2": hub2, "k8s": _hub_vars(jupyterhub_mode="kubernetes")}
    names = [e["name"] for e in jupyterhub_frontdoor_catalogue(["hub1", "hub2", "k8s"], hosts, ["web1"])]
    assert names == ["jupyterhub_public", "jupyterhub_private", "jupyterhub_public_hub2"]


def test_firewall_opens_only_non_loopback_hubs_to_the_front_doors():
    merged_ = jupyterhub_deployments(_hub_vars("10.0.0.31")["jupyterhub_deployments"], {"bind_ip": "10.0.0.31"})
    assert jupyterhub_firewall_rules(merged_, ["10.0.0.21", "10.0.0.20"]) == [
        {"port": 8000, "sources": ["10.0.0.20", "10.0.0.21"], "comment": "jupyterhub public proxy from the front door"},
        {"port": 8010, "sources": ["10.0.0.20", "10.0.0.21"], "comment": "jupyterhub private proxy from the front door"}]
    assert jupyterhub_firewall_rules(jupyterhub_deployments(_hub_vars()["jupyterhub_deployments"]), ["10.0.0.21"]) == []


def test_user_envs_are_built_once_per_name():
    assert jupyterhub_user_envs(list(merged().values())) == [
        {"name": "default", "packages": ["jupyterlab>=4.2,<5", "ipykernel"]}]


def test_user_env_pip_job_pins_singleuser_and_skips_the_cache():
    env = jupyterhub_user_envs(list(merged().values()))[0]
    assert jupyterhub_env_pip_job(env, "/opt/jupyterhub/envs", "jupyterhub==5.2.1") == {
        "label": "env default", "venv": "/opt/jupyterhub/envs/default",
        "packages": ["jupyterhub==5.2.1", "jupyterlab>=4.2,<5", "ipykernel"], "env": {"PIP_NO_CACHE_DIR": "1"}}


def test_summary_lines():
    assert jupyterhub_summary(list(merged().values())) == [
        "public: https://public.hub.test/ (login tmp, storage none, culling idle 600 s, max age 28800 s, users removed)",
        "private: https://private.staging.hub.test/ (login github, storage persistent, culling idle 1800 s)"]


def test_the_example_layers_are_the_seeds_order():
    assert list(layers()) == ["common", "deployments", "environment", "secrets"]


def test_the_loops_copies_hold_no_secret():
    trees = list(merged().values())
    redacted = jupyterhub_redacted(trees)
    assert "test-client-secret-not-real" not in json.dumps(redacted)
    assert [d["auth"]["client_secret"] for d in redacted] == ["", "<hidden>"]
    assert trees[1]["auth"]["client_secret"] == "test-client-secret-not-real", "the merged trees keep theirs"
    assert jupyterhub_settings(redacted[1], PATHS) == jupyterhub_settings(trees[1], PATHS)


def test_dynamic_users_only_for_generated_names_on_a_single_host():
    entry = {"name": "p", "profile": "private", "server_name": "p.test", "storage": {"type": "none"},
             "auth": {"client_id": "i", "client_secret": "s", "allowed_organizations": ["o"]}}
    problems = jupyterhub_problems([one(entry)])
    assert len(problems) == 1 and "storage.type none runs each user as a systemd dynamic user" in problems[0]
    assert jupyterhub_problems([one(entry)], "kubernetes") == [], "on Kubernetes no storage is a pod without a volume"
