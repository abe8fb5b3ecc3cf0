"""plugins/filter/services.py: the services list as the roles and playbooks act on it."""
from __future__ import annotations

import pytest

from ansible_collections.sciops.platform.plugins.filter.services import (
    AnsibleFilterError, app_hosts, colour_firewall_rules, database_connections, frontdoor_certificates, frontdoor_defaults,
    frontdoor_headers, service_entries, service_env, service_named, services_on_host, venv_share_plan)

GROUPS = {"all": ["fd1", "app1", "app2", "db1"], "frontdoor": ["fd1"], "nmpi_queue": ["app1", "app2"],
          "echo": ["app1"], "postgres": ["db1"]}
ADDRESSES = {"fd1": "10.0.0.5", "app1": "10.0.0.21", "app2": "10.0.0.22", "db1": "10.0.0.11"}
PROFILES = {"nmpi_queue": {
    "source": {"repo": "https://example.org/upstream.git", "ref": "master", "subdir": "api"},
    "entry_point": "simqueue.main:app", "requirements_file": "requirements.txt.lock",
    "env": {"NMPI_DATABASE_HOST": "db", "NMPI_SERVICE_STATUS": "ok"}, "secret_env": {"NMPI_DATABASE_PASSWORD": "pw"},
    "maintenance": {"env": "NMPI_SERVICE_STATUS", "health_path": "/"}, "base_url_env": "NMPI_BASE_URL",
    "data_dirs": [{"name": "tmp_download", "env": "NMPI_TMP_FILE_ROOT", "location": "/tmp_download/"}],
    "health_path": "/statistics/queue-length"}}


def nmpi(**extra):
    entry = {"name": "nmpi_queue", "profile": "nmpi_queue", "server_name": "nmpi.test",
             "ports": {"blue": 8101, "green": 8102}, "source": {"archive": "/x/upstream.tar.gz", "strip_components": 1}}
    entry.update(extra)
    return entry


def echo(**extra):
    entry = {"name": "echo", "server_name": "echo.test", "entry_point": "ws_echo.main:app",
             "ports": {"blue": 8301, "green": 8302}, "source": {"dir": "/x/ws_echo_app"}}
    entry.update(extra)
    return entry


def splash(**extra):
    entry = {"name": "splash", "kind": "static", "server_name": "www.test", "index": "home.html",
             "source": {"archive": "/x/upstream.tar.gz", "subdir": "documentation/splash"}}
    entry.update(extra)
    return entry


def entries(*services, groups=None):
    return service_entries(list(services), PROFILES, groups or GROUPS, ADDRESSES)


def test_profile_defaults_are_merged_under_the_entry():
    [entry] = entries(nmpi(env={"EXTRA": "1"}, health_timeout=120))
    assert entry["entry_point"] == "simqueue.main:app" and entry["requirements_file"] == "requirements.txt.lock"
    assert entry["env"] == {"NMPI_DATABASE_HOST": "db", "NMPI_SERVICE_STATUS": "ok", "EXTRA": "1"}
    assert entry["health_timeout"] == 120 and entry["health_path"] == "/statistics/queue-length"
    # the entry's archive replaces the profile's repository; the profile's subdir stays
    assert entry["source"]["repo"] == "" and entry["source"]["archive"] == "/x/upstream.tar.gz"
    assert entry["source"]["subdir"] == "api" and entry["source"]["strip_components"] == 1
    # the server is not pinned: the application's own lock file decides its version
    assert entry["server_package"] == "uvicorn"
    # uvloop beside uvicorn: asyncio leaves TCP_NODELAY off on a multi-worker uvicorn's connections
    assert entry["server_packages"] == ["uvicorn", "uvloop"]


def test_remote_front_door_binds_private_addresses_and_lists_every_node():
    [entry] = entries(nmpi())
    assert entry["host_list"] == ["app1", "app2"]
    assert entry["listen"] == {"app1": "10.0.0.21", "app2": "10.0.0.22"}
    assert entry["upstream"] == ["10.0.0.21", "10.0.0.22"]
    assert entry["frontdoor_addresses"] == ["10.0.0.5"]


def test_front_door_on_the_same_node_binds_loopback():
    groups = dict(GROUPS, frontdoor=["app1"])
    [entry] = entries(echo(), groups=groups)
    assert entry["listen"] == {"app1": "127.0.0.1"} and entry["upstream"] == ["127.0.0.1"]


def test_static_sites_run_on_the_front_door_and_nowhere_else():
    [site] = entries(splash())
    assert site["host_list"] == ["fd1"]
    with pytest.raises(AnsibleFilterError, match="static site is served by the front door"):
        entries(splash(hosts="nmpi_queue"))


@pytest.mark.parametrize("bad, message", [
    ({"name": "Bad-Name"}, "lower-case letters"),
    ({"kind": "php"}, "kind 'php' is not one of"),
    ({"server_name": ""}, "server_name is empty"),
    ({"ports": {"blue": 8101, "green": 8101}}, "distinct ports"),
    ({"ports": {"blue": 80, "green": 8102}}, "outside 1024-65535"),
    ({"source": {"archive": "/a.tgz", "dir": "/d"}}, "exactly one of repo, archive or dir"),
    ({"entry_point": "no colon"}, "must be module:attribute"),
    ({"hosts": "nosuchgroup"}, "neither a group nor a host"),
    ({"colour": "blue"}, "unknown field 'colour'"),
    ({"source": {"archive": "/a", "branch": "x"}}, "unknown key"),
    ({"profile": "unknown"}, "no profile 'unknown' was loaded"),
])
def test_bad_entries_get_one_message_naming_the_field(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        entries(echo(**bad))


def test_names_and_ports_must_not_collide():
    with pytest.raises(AnsibleFilterError, match="listed twice"):
        entries(echo(), echo())
    with pytest.raises(AnsibleFilterError, match="both use port 8101 on app1"):
        entries(nmpi(), echo(ports={"blue": 8101, "green": 8302}))


def test_unknown_service_names_list_the_known_ones():
    catalogue = entries(nmpi(), echo(), splash())
    assert service_named(catalogue, "echo")["name"] == "echo"
    with pytest.raises(AnsibleFilterError, match="known services: nmpi_queue, echo, splash"):
        service_named(catalogue, "nmpi")
    assert [e["name"] for e in services_on_host(catalogue, "app1")] == ["nmpi_queue", "echo"]


def test_environment_of_a_colour():
    [entry] = entries(nmpi())
    env = service_env(entry, "green", "v2", "down", "/var/lib/sciops")
    assert env["SCIOPS_COLOUR"] == "green" and env["SCIOPS_RELEASE"] == "v2"
    assert env["NMPI_SERVICE_STATUS"] == "down"
    assert env["NMPI_BASE_URL"] == "https://nmpi.test"
    assert env["NMPI_TMP_FILE_ROOT"] == "/var/lib/sciops/nmpi_queue/tmp_download"
    assert env["NMPI_DATABASE_PASSWORD"] == "pw"
    assert service_env(entry, "blue", "v1")["NMPI_SERVICE_STATUS"] == "ok"


def test_certificates_headers_and_acme_default():
    catalogue = frontdoor_defaults(entries(nmpi(server_aliases=["quotas.test"]), splash(acme=False)), True)
    assert [e["acme"] for e in catalogue] == [True, False]
    assert frontdoor_certificates(catalogue, True) == [{"name": "nmpi.test", "domains": ["nmpi.test", "quotas.test"]}]
    base = {"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer"}
    assert frontdoor_headers({"headers": {"X-Frame-Options": None, "X-Extra": "1"}}, base) == {
        "Referrer-Policy": "no-referrer", "X-Extra": "1"}


def test_firewall_opens_colour_ports_to_the_front_door_only_where_they_listen_remotely():
    services = [nmpi(), echo()]
    rules = colour_firewall_rules(services, "app2", GROUPS, ADDRESSES)
    assert [(r["port"], r["sources"]) for r in rules] == [(8101, ["10.0.0.5"]), (8102, ["10.0.0.5"])]
    local = dict(GROUPS, frontdoor=["app1"], nmpi_queue=["app1"])
    assert colour_firewall_rules(services, "app1", local, ADDRESSES) == []
    assert colour_firewall_rules(services, "db1", GROUPS, ADDRESSES) == []
    assert app_hosts(services + [splash()], GROUPS) == ["app1", "app2"]


def test_a_static_site_installs_no_server():
    # a static site's build key must not change with the Python servers' packages
    (entry,) = entries(splash())
    assert entry["server_packages"] == []


def test_database_connections_count_every_pool_of_both_colours():
    profiles = {"nmpi_queue": dict(PROFILES["nmpi_queue"], db_connections=10)}
    catalogue = service_entries([nmpi(), echo(), splash()], profiles, GROUPS, ADDRESSES)
    # nmpi_queue: 2 app nodes x 2 workers x 10 pooled connections x 2 colours; echo and splash hold none.
    assert database_connections(catalogue) == 80
    catalogue = service_entries([nmpi(workers=4), echo(db_connections=5)], profiles, GROUPS, ADDRESSES)
    assert database_connections(catalogue) == 2 * 4 * 10 * 2 + 1 * 2 * 5 * 2


def test_db_connections_must_be_a_count():
    with pytest.raises(AnsibleFilterError, match=r"echo.*db_connections must be 0 or more"):
        service_entries([echo(db_connections=-1)], None, GROUPS, ADDRESSES)
    with pytest.raises(AnsibleFilterError, match=r"db_connections must be a number"):
        service_entries([echo(db_connections="many")], None, GROUPS, ADDRESSES)


def _plans(**plans):
    """hostvars with a __webservice_venv_plan per host (None: the host has none)."""
    return {host: ({} if plan is None else {"__webservice_venv_plan": plan}) for host, plan in plans.items()}


def _plan(build, service="nmpi_queue", venv="/srv/nmpi_queue/releases/blue-1/venv", key="k1"):
    return {"service": service, "venv": venv, "key": key, "build": build}


def test_venv_share_first_host_builds_the_others_receive():
    hostvars = _plans(app1=_plan(True), app2=_plan(True), app3=_plan(True))
    for host in ("app1", "app2", "app3"):
        assert venv_share_plan(hostvars, ["app1", "app2", "app3"], host) == {"provider": "app1", "receivers": ["app2", "app3"]}


def test_venv_share_a_host_that_has_it_provides_it_to_a_new_one():
    hostvars = _plans(app1=_plan(False), app2=_plan(False), app3=_plan(True))
    assert venv_share_plan(hostvars, ["app1", "app2", "app3"], "app3") == {"provider": "app1", "receivers": ["app3"]}


def test_venv_share_nothing_to_share_when_no_host_or_one_host_needs_it():
    batch = ["app1", "app2"]
    assert venv_share_plan(_plans(app1=_plan(False), app2=_plan(False)), batch, "app1") == {"provider": "", "receivers": []}
    # one host needs it and none has it: it builds, nothing to copy
    assert venv_share_plan(_plans(app1=_plan(True), app2=_plan(False, key="k0")), batch, "app1") == {"provider": "", "receivers": []}
    assert venv_share_plan(_plans(app1=_plan(True)), ["app1"], "app1") == {"provider": "", "receivers": []}


def test_venv_share_groups_by_service_path_and_key():
    hostvars = _plans(app1=_plan(True, key="k1"), app2=_plan(True, key="k2"), app3=_plan(True, key="k1"),
                      app4=_plan(True, venv="/srv/nmpi_queue/releases/green-1/venv"), app5=_plan(True, service="echo"))
    batch = ["app1", "app2", "app3", "app4", "app5"]
    assert venv_share_plan(hostvars, batch, "app3") == {"provider": "app1", "receivers": ["app3"]}
    for host in ("app2", "app4", "app5"):
        assert venv_share_plan(hostvars, batch, host) == {"provider": "", "receivers": []}


def test_venv_share_ignores_hosts_outside_the_batch_and_without_a_plan():
    hostvars = _plans(app1=_plan(False), app2=_plan(True), app3=None, app4=_plan(True))
    hostvars["app4"]["__webservice_venv_plan"] = {}  # a plan forgotten after its service
    batch = ["app2", "app3", "app4", "app5"]  # app1 is not in this batch (serial, --limit); app5 not in hostvars
    assert venv_share_plan(hostvars, batch, "app2") == {"provider": "", "receivers": []}
    assert venv_share_plan(hostvars, batch, "app3") == {"provider": "", "receivers": []}
