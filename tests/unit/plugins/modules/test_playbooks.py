"""playbooks/dns.yml and the provision role's digitalocean provider, end to end against the test servers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]


def run(args, env, cwd=ROOT):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GODADDY_", "DIGITALOCEAN_", "ANSIBLE_"))}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", no_proxy="127.0.0.1", **env)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-e", "ansible_python_interpreter=%s" % sys.executable] + args
    return subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300, check=False)


def changed_items(stdout):
    return sum(1 for line in stdout.splitlines() if line.startswith("changed: [localhost] => (item="))


def test_dns_playbook_makes_zone_match_inventory(godaddy, tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts: {}\n")
    records = [
        {"name": "@", "type": "A", "values": ["203.0.113.20"]},
        {"name": "www", "type": "CNAME", "values": ["example.org"]},
        {"name": "_acme-challenge", "type": "TXT", "values": ["abc"], "solo": False, "ttl": 600},
        {"name": "old", "type": "TXT", "state": "absent"},
    ]
    godaddy.zones["example.org"].append({"type": "TXT", "name": "old", "data": "bye", "ttl": 600})
    (inv / "group_vars" / "all" / "dns.yml").write_text(yaml.safe_dump(
        {"dns_domain": "example.org", "dns_godaddy_base_url": godaddy.url, "dns_records": records}))
    env = {"GODADDY_API_KEY": "test-key", "GODADDY_API_SECRET": "test-secret"}
    check = run(["-i", str(inv), "playbooks/dns.yml", "--check", "--diff"], env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert changed_items(check.stdout) == 4 and godaddy.writes() == []
    assert "-    - 203.0.113.1" in check.stdout and "+    - 203.0.113.20" in check.stdout, check.stdout
    first = run(["-i", str(inv), "playbooks/dns.yml", "--diff"], env)
    assert first.returncode == 0 and changed_items(first.stdout) == 4, first.stdout
    assert [r["data"] for r in godaddy.records("example.org", "A", "@")] == ["203.0.113.20"]
    assert godaddy.records("example.org", "TXT", "old") == []
    godaddy.reset_log()
    again = run(["-i", str(inv), "playbooks/dns.yml"], env)
    assert again.returncode == 0 and changed_items(again.stdout) == 0 and godaddy.writes() == [], again.stdout
    assert len(godaddy.calls()) == 4  # one read per record set


def test_provision_role_digitalocean_provider(digitalocean, tmp_path):
    play = [{
        "name": "Provision", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Nodes", "ansible.builtin.include_role": {"name": "sciops.platform.provision"},
             "vars": {"provision_provider": "digitalocean", "provision_environment": "staging",
                      "provision_state": "{{ state }}", "provision_confirm_absent": True,
                      "provision_digitalocean_base_url": digitalocean.url, "provision_digitalocean_poll_interval": 0.1,
                      "provision_nodes": [{"name": "staging-db1", "groups": ["postgres"], "size": "s-2vcpu-4gb", "tags": ["sciops-staging"]},
                                          {"name": "staging-web1", "groups": ["web"]}]}},
            {"name": "Addresses", "ansible.builtin.debug": {"var": "provision_node_addresses"}, "when": "state == 'present'"},
        ]}]
    path = tmp_path / "provision.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    env = {"DIGITALOCEAN_TOKEN": "test-token"}
    first = run(["-i", "localhost,", str(path), "-e", "state=present"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(d["name"] for d in digitalocean.droplets.values()) == ["staging-db1", "staging-web1"]
    db1 = next(d for d in digitalocean.droplets.values() if d["name"] == "staging-db1")
    assert set(db1["tags"]) == {"sciops-staging", "sciops-group-postgres", "sciops-env-staging"} and db1["size_slug"] == "s-2vcpu-4gb"
    assert "public_ipv4" in first.stdout
    digitalocean.reset_log()
    again = run(["-i", "localhost,", str(path), "-e", "state=present"], env)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    assert len(digitalocean.calls()) == 2  # one list call per node
    gone = run(["-i", "localhost,", str(path), "-e", "state=absent"], env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert digitalocean.droplets == {}


def test_provision_playbook_creates_droplets_records_addresses_and_removes_them(digitalocean, tmp_path):
    """playbooks/provision.yml with a staging-like inventory: the DigitalOcean provider end to end."""
    inv = tmp_path / "staging"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"postgres": {"hosts": {"stg-db1": None}}, "app": {"hosts": {"stg-app1": None}}}}}))
    (inv / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({
        "sciops_environment": "staging", "provision_provider": "digitalocean",
        "provision_digitalocean_base_url": digitalocean.url, "provision_digitalocean_poll_interval": 0.1,
        "sciops_node": {"size": "s-2vcpu-4gb", "region": "fra1", "image": "debian-12-x64", "tags": ["sciops-staging"]}}))
    env = {"DIGITALOCEAN_TOKEN": "test-token"}
    args = ["-i", str(inv), "playbooks/provision.yml", "-e", "provision_wait_for_connection=false"]

    first = run(args, env)
    assert first.returncode == 0, first.stdout + first.stderr
    droplets = {d["name"]: d for d in digitalocean.droplets.values()}
    assert sorted(droplets) == ["stg-app1", "stg-db1"]
    assert "sciops-group-postgres" in droplets["stg-db1"]["tags"]
    recorded = yaml.safe_load((inv / "host_vars" / "stg-db1" / "provisioned.yml").read_text())
    public = next(n["ip_address"] for n in droplets["stg-db1"]["networks"]["v4"] if n["type"] == "public")
    assert recorded["ansible_host"] == public
    # The refreshed inventory reaches the node at that address.
    seen = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inv), "--host", "stg-db1"],
                          capture_output=True, text=True, check=True, env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    assert yaml.safe_load(seen.stdout)["ansible_host"] == public

    digitalocean.reset_log()
    again = run(args, env)
    assert again.returncode == 0, again.stdout
    assert "localhost                  : ok=" in again.stdout and digitalocean.writes() == []
    assert len(digitalocean.calls()) == 2  # one filtered list call per node

    refused = run(args + ["-e", "provision_state=absent"], env)
    assert refused.returncode != 0 and '-e \'{"provision_confirm_absent": true}\'' in refused.stdout
    assert len(digitalocean.droplets) == 2
    gone = run(args + ["-e", '{"provision_state": "absent", "provision_confirm_absent": true}'], env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert digitalocean.droplets == {}


def test_staging_forum_host_gets_a_droplet_and_its_dns_name(digitalocean, godaddy, tmp_path):
    """The staging inventory as it is (a copy, its links resolved): provision.yml creates every node's
    droplet, the forum's included, and dns.yml then points forum.staging.<domain> at the forum droplet's
    address that provision.yml recorded, and the services' and hubs' names at the front door's."""
    inv = tmp_path / "staging"
    shutil.copytree(ROOT / "inventories" / "staging", inv, symlinks=False)
    # The secrets' template stands in for the encrypted vault (its CHANGE-ME values reach no server).
    shutil.copy(inv / "group_vars" / "all" / "vault.yml.example", inv / "group_vars" / "all" / "vault.yml")
    (inv / "group_vars" / "all" / "zz_test_servers.yml").write_text(yaml.safe_dump({
        "provision_digitalocean_base_url": digitalocean.url, "provision_digitalocean_poll_interval": 0.1,
        "dns_godaddy_base_url": godaddy.url, "dns_domain": "example.org"}))
    env = {"DIGITALOCEAN_TOKEN": "test-token", "GODADDY_API_KEY": "test-key", "GODADDY_API_SECRET": "test-secret"}
    provisioned = run(["-i", str(inv), "playbooks/provision.yml", "-e", "provision_wait_for_connection=false"], env)
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    droplets = {d["name"]: d for d in digitalocean.droplets.values()}
    assert "staging-forum1" in droplets and "sciops-group-forum" in droplets["staging-forum1"]["tags"], sorted(droplets)
    public = next(n["ip_address"] for n in droplets["staging-forum1"]["networks"]["v4"] if n["type"] == "public")
    dns = run(["-i", str(inv), "playbooks/dns.yml"], env)
    assert dns.returncode == 0, dns.stdout + dns.stderr
    assert [r["data"] for r in godaddy.records("example.org", "A", "forum.staging")] == [public]
    # Every other public name (the services', the hubs') points at the front door's droplet.
    front = next(n["ip_address"] for n in droplets["staging-app1"]["networks"]["v4"] if n["type"] == "public")
    for name in ("nmpi", "quotas", "www", "docs", "hub", "lab"):
        assert [r["data"] for r in godaddy.records("example.org", "A", name + ".staging")] == [front], name
