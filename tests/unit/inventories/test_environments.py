"""The environments' inventories are complete and consistent (issue 16, "Environments"): staging and
production have the same groups and the same variable files, every group of the local environment
has its counterpart (or is local-only, with why), every host is a droplet that provision.yml can
create, every public name has its GoDaddy record pointing at a host of the inventory, every
environment has its own vault and vault id, and the wrappers refuse another environment's
inventory. The inventories are read by ansible-inventory itself."""
from __future__ import annotations

import configparser
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
CLOUD = ("staging", "production")

# Groups of inventories/local that staging and production do not have, and why.
LOCAL_ONLY = {
    "acme_test_ca": "Pebble, the local ACME test CA: staging and production get their certificates from Let's Encrypt",
    "s3_test_endpoint": "moto, the local S3 test endpoint: staging and production keep the forum's backups in AWS S3",
}
# Groups of staging and production that the local environment does not have, and why.
NOT_LOCAL = {
    "gpu_workers": "no GPU on the local machines: molecule/gpu_worker tests the role with test doubles",
}
# Groups that may have no host yet, and why.
MAY_BE_EMPTY = {
    "gpu_workers": "GPU machines are added when the team has them (docs/runbooks/add-gpu-worker.md)",
}
# Files of staging's and production's group_vars/host_vars that only one of them has: none.
ONE_SIDED_FILES: dict[str, str] = {}
HOSTVAR_TEMPLATE = re.compile(r"^\{\{ hostvars\['([A-Za-z0-9_.-]+)'\]\.ansible_host \}\}$")


def inventory_list(env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventories/%s" % env, "--list"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def inventories():
    return {env: inventory_list(env) for env in ("local",) + CLOUD}


def groups(data):
    """{group: sorted hosts} of an ansible-inventory --list answer (all groups, their hosts recursively)."""
    found = {}

    def walk(name):
        node = data.get(name, {})
        hosts = set(node.get("hosts", []))
        for child in node.get("children", []):
            hosts |= walk(child)
        if name not in ("all", "ungrouped"):
            found[name] = sorted(hosts)
        return hosts

    walk("all")
    return found


def load(path):
    return yaml.safe_load(Path(path).read_text()) or {}


# --- the checks: each returns its problems, one line each --------------------------------------
def group_problems(local, staging, production):
    problems = []
    if set(staging) != set(production):
        problems.append("staging and production differ in groups: %s" % sorted(set(staging) ^ set(production)))
    for name in sorted(set(local) - set(staging)):
        if name not in LOCAL_ONLY:
            problems.append("local group %s has no counterpart in staging/production and is not listed as local-only" % name)
    for name in sorted(set(staging) - set(local)):
        if name not in NOT_LOCAL:
            problems.append("group %s of staging/production is not in the local environment and not listed with a reason" % name)
    for name in sorted(LOCAL_ONLY):
        if name not in local or name in staging:
            problems.append("LOCAL_ONLY lists %s, which is not a local-only group" % name)
    for env, found in (("staging", staging), ("production", production)):
        for name, hosts in sorted(found.items()):
            if not hosts and name not in MAY_BE_EMPTY:
                problems.append("%s: group %s has no host" % (env, name))
    return problems


def files_of(env):
    base = ROOT / "inventories" / env
    found = {}
    for folder in ("group_vars", "host_vars"):
        for path in sorted((base / folder).rglob("*")):
            if path.is_file() or path.is_symlink():
                if path.name == "vault.yml" or path.name == "provisioned.yml":
                    continue  # secrets and provision.yml's output: per environment by nature
                found[str(path.relative_to(base))] = os.readlink(path) if path.is_symlink() else "file"
    return found


def layout_problems(staging, production):
    problems = []
    for name in sorted(set(staging) | set(production)):
        if name in ONE_SIDED_FILES:
            continue
        if name not in staging or name not in production:
            problems.append("%s is in %s only" % (name, "staging" if name in staging else "production"))
        elif staging[name] != production[name]:
            problems.append("%s: staging has %s, production %s" % (name, staging[name], production[name]))
    return problems


def provision_problems(env, data):
    problems = []
    for host, variables in sorted(data["_meta"]["hostvars"].items()):
        if variables.get("provision_provider") != "digitalocean":
            problems.append("%s: provision_provider is %r, not digitalocean" % (host, variables.get("provision_provider")))
        node = variables.get("sciops_node") or {}
        for key in ("image", "size", "region"):
            if not isinstance(node.get(key), str) or not node.get(key):
                problems.append("%s: sciops_node.%s (the droplet's %s) is missing" % (host, key, key))
        if "sciops-%s" % env not in (node.get("tags") or []):
            problems.append("%s: its droplet is not tagged sciops-%s" % (host, env))
        if variables.get("sciops_environment") != env:
            problems.append("%s: sciops_environment is %r" % (host, variables.get("sciops_environment")))
    return problems


def public_names(env):
    """{fqdn: the group that serves it}: the services' and hubs' names (the front door), the forum's."""
    base = ROOT / "inventories" / env / "group_vars"
    names = {}
    for service in load(base / "all" / "services.yml").get("webservice_services", []):
        for name in [service["server_name"]] + list(service.get("server_aliases", [])):
            names[name] = "frontdoor"
    for hub in load(base / "jupyterhub" / "environment.yml").get("jupyterhub_environment", {}).values():
        names[hub["server_name"]] = "frontdoor"
    return names


def dns_problems(dns, names, found_groups, hosts):
    """Every record points at hosts of the inventory; every public name has one, at a host of the group serving it."""
    problems = []
    domain = dns.get("dns_domain")
    if not domain:
        return ["dns_domain is not set"]
    records = {}
    for record in dns.get("dns_records", []):
        fqdn = domain if record["name"] == "@" else "%s.%s" % (record["name"], record.get("domain", domain))
        if record["type"] not in ("A", "AAAA"):
            problems.append("%s: %s records cannot be checked against the inventory; point names at hosts with A records" % (fqdn, record["type"]))
            continue
        targets = []
        for value in record.get("values", []):
            match = HOSTVAR_TEMPLATE.match(str(value))
            if not match:
                problems.append("%s: %r is not a host's address ({{ hostvars['<host>'].ansible_host }})" % (fqdn, value))
            elif match.group(1) not in hosts:
                problems.append("%s points at %s, which is not a host of the inventory" % (fqdn, match.group(1)))
            else:
                targets.append(match.group(1))
        records[fqdn] = targets
    for name, group in sorted(names.items()):
        if name not in records:
            problems.append("%s has no DNS record" % name)
        elif not records[name] or not set(records[name]) <= set(found_groups.get(group, [])):
            problems.append("%s points at %s, not at the group %s that serves it" % (name, records[name], group))
    for forum in found_groups.get("forum", []):
        if not any(forum in targets for targets in records.values()):
            problems.append("the forum %s has no DNS name" % forum)
    for fqdn, targets in sorted(records.items()):
        if fqdn not in names and not set(targets) & set(found_groups.get("forum", [])):
            problems.append("%s is a record of no service, hub or forum" % fqdn)
    return problems


def referenced_vault_variables(env):
    base = ROOT / "inventories" / env
    found = set()
    for path in base.rglob("*.yml"):
        if path.name != "vault.yml":
            # Names only: a name built in a template (vault_postgres_{{ user }}_password, in a message) is not one.
            found |= set(re.findall(r"\bvault_[a-z0-9_]+\b(?!\{)", path.read_text()))
    return found


def vault_problems(env, example, referenced, vault_text, main, credentials):
    problems = []
    defined = set(example)
    for name in sorted(referenced - defined):
        problems.append("%s: %s is used but not in vault.yml.example" % (env, name))
    if vault_text is not None and not vault_text.startswith("$ANSIBLE_VAULT;1.2;AES256;%s\n" % env):
        problems.append("%s: vault.yml is not encrypted with the vault id %s" % (env, env))
    if main.get("sciops_vault_file") != "inventories/%s/group_vars/all/vault.yml" % env:
        problems.append("%s: sciops_vault_file is %r" % (env, main.get("sciops_vault_file")))
    ids = [c.get("inputs", {}).get("vault_id") for c in credentials if c.get("credential_type") == "Vault" and env in c["name"]]
    if ids != [env]:
        problems.append("%s: AWX's vault credential has the vault ids %s" % (env, ids))
    return problems


def _unsafe(loader, node):
    return loader.construct_scalar(node)


class Loader(yaml.SafeLoader):
    """awx/controller.yml carries Ansible's !unsafe tag."""


Loader.add_constructor("!unsafe", _unsafe)


def awx_credentials():
    return yaml.load((ROOT / "awx" / "controller.yml").read_text(), Loader=Loader)["controller_credentials"]


# --- the real inventories ------------------------------------------------------------------------
def test_staging_and_production_have_every_group_of_local_and_the_same_groups(inventories):
    found = {env: groups(data) for env, data in inventories.items()}
    assert group_problems(found["local"], found["staging"], found["production"]) == []


def test_staging_and_production_have_the_same_variable_files(inventories):
    assert layout_problems(files_of("staging"), files_of("production")) == []


@pytest.mark.parametrize("env", CLOUD)
def test_every_host_is_a_droplet_provision_can_create(inventories, env):
    assert inventories[env]["_meta"]["hostvars"], env
    assert provision_problems(env, inventories[env]) == []


@pytest.mark.parametrize("env", CLOUD)
def test_every_public_name_has_its_record_at_a_host_of_the_inventory(inventories, env):
    found = groups(inventories[env])
    dns = load(ROOT / "inventories" / env / "group_vars" / "all" / "dns.yml")
    assert dns_problems(dns, public_names(env), found, set(inventories[env]["_meta"]["hostvars"])) == []


@pytest.mark.parametrize("env", CLOUD)
def test_every_environment_has_its_own_vault_and_vault_id(env):
    base = ROOT / "inventories" / env / "group_vars" / "all"
    vault = base / "vault.yml"
    problems = vault_problems(env, load(base / "vault.yml.example"), referenced_vault_variables(env),
                              vault.read_text() if vault.exists() else None, load(base / "main.yml"), awx_credentials())
    assert problems == []


def test_the_examples_name_the_same_secrets_and_only_local_has_a_committed_password():
    staging = load(ROOT / "inventories/staging/group_vars/all/vault.yml.example")
    production = load(ROOT / "inventories/production/group_vars/all/vault.yml.example")
    assert set(staging) == set(production)
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    assert config["defaults"]["vault_identity_list"].strip() == "local@inventories/local/.vault-password"
    for env in CLOUD:
        assert not list((ROOT / "inventories" / env).rglob(".vault-password*")), env


@pytest.mark.parametrize("wrapper, inventory", [("staging", "production"), ("production", "staging"), ("staging", "local")])
def test_a_wrapper_refuses_another_environments_inventory(wrapper, inventory, tmp_path):
    """For real: ansible-playbook with the wrong inventory stops at the wrapper's check, before any node is touched
    (the example's placeholder secrets stand in for the vault; the checks run on the controller)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", SCIOPS_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    # The local services' source, which the validation play needs set (the Makefile's default; make sets it).
    environ.setdefault("SCIOPS_NMPI_ARCHIVE", str(ROOT.parent / "shared" / "upstream" / "ebrains-neuromorphic-job-queue-api-59c92ce.tar.gz"))
    example = ROOT / "inventories" / (inventory if inventory != "local" else "staging") / "group_vars" / "all" / "vault.yml.example"
    cmd = [str(BIN / "ansible-playbook"), "-i", "inventories/%s" % inventory, "playbooks/%s.yml" % wrapper]
    if inventory != "local":
        cmd += ["-e", "@%s" % example]
    proc = subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "playbooks/%s.yml runs only against inventories/%s (this inventory says sciops_environment=%s)" % (
        wrapper, wrapper, inventory) in proc.stdout + proc.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert record["result"] == "failed" and record["changed"] == 0 and record["environment"] == [inventory]


# --- each check refuses a broken copy ------------------------------------------------------------
def test_the_group_check_refuses_a_missing_or_unexplained_group(inventories):
    found = {env: groups(data) for env, data in inventories.items()}
    staging, production, local = found["staging"], found["production"], found["local"]
    without_forum = {k: v for k, v in production.items() if k != "forum"}
    assert any("differ in groups" in p for p in group_problems(local, staging, without_forum))
    assert any("local group forum has no counterpart" in p for p in group_problems(
        local, {k: v for k, v in staging.items() if k != "forum"}, without_forum))
    assert any("group extra of staging/production" in p for p in group_problems(
        local, dict(staging, extra=["x"]), dict(production, extra=["x"])))
    assert any("group jupyterhub has no host" in p for p in group_problems(local, dict(staging, jupyterhub=[]), production))


def test_the_layout_check_refuses_a_file_on_one_side_or_another_link():
    staging, production = files_of("staging"), files_of("production")
    assert layout_problems(staging, {k: v for k, v in production.items() if k != "group_vars/all/dns.yml"}) == [
        "group_vars/all/dns.yml is in staging only"]
    link = "group_vars/all/00_platform.yml"
    assert layout_problems(staging, dict(production, **{link: "elsewhere.yml"})) != []


def test_the_provision_check_refuses_a_host_without_droplet_data(inventories):
    data = copy.deepcopy(inventories["staging"])
    host = sorted(data["_meta"]["hostvars"])[0]
    data["_meta"]["hostvars"][host]["sciops_node"] = {"image": "debian-12-x64", "tags": ["sciops-staging"]}
    assert provision_problems("staging", data) == [
        "%s: sciops_node.size (the droplet's size) is missing" % host, "%s: sciops_node.region (the droplet's region) is missing" % host]
    data["_meta"]["hostvars"][host]["sciops_environment"] = "production"
    assert any("sciops_environment is 'production'" in p for p in provision_problems("staging", data))


def test_the_dns_check_refuses_stray_missing_and_misdirected_names(inventories):
    found = groups(inventories["staging"])
    hosts = set(inventories["staging"]["_meta"]["hostvars"])
    dns = load(ROOT / "inventories/staging/group_vars/all/dns.yml")
    names = public_names("staging")
    records = dns["dns_records"]
    fixed_ip = dict(dns, dns_records=records + [{"name": "@", "type": "A", "values": ["203.0.113.20"]}])
    assert any("'203.0.113.20' is not a host's address" in p for p in dns_problems(fixed_ip, names, found, hosts))
    missing = dict(dns, dns_records=[r for r in records if not r["name"].startswith("lab")])
    assert "lab.staging.sciops.example.org has no DNS record" in dns_problems(missing, names, found, hosts)
    wrong = dict(dns, dns_records=[dict(r, values=["{{ hostvars['staging-db1'].ansible_host }}"]) if r["name"].startswith("hub") else r
                                   for r in records])
    assert any(p.startswith("hub.staging.sciops.example.org points at ['staging-db1']") for p in dns_problems(wrong, names, found, hosts))
    unknown = dict(dns, dns_records=records + [{"name": "old", "type": "A", "values": ["{{ hostvars['staging-web9'].ansible_host }}"]}])
    assert any("staging-web9, which is not a host" in p for p in dns_problems(unknown, names, found, hosts))
    other = dict(dns, dns_records=records + [{"name": "mail", "type": "A", "values": ["{{ hostvars['staging-db1'].ansible_host }}"]}])
    assert "mail.sciops.example.org is a record of no service, hub or forum" in dns_problems(other, names, found, hosts)
    no_forum = dict(dns, dns_records=[r for r in records if not r["name"].startswith("forum")])
    assert "the forum staging-forum1 has no DNS name" in dns_problems(no_forum, names, found, hosts)


def test_the_vault_check_refuses_a_missing_secret_another_vault_id_or_file():
    base = ROOT / "inventories/staging/group_vars/all"
    example, main = load(base / "vault.yml.example"), load(base / "main.yml")
    referenced = referenced_vault_variables("staging")
    assert "vault_postgres_nmpi_dbadmin_password" in referenced
    assert vault_problems("staging", example, referenced, None, main, awx_credentials()) == []
    short = {k: v for k, v in example.items() if k != "vault_gpu_worker_key"}
    assert vault_problems("staging", short, referenced, None, main, awx_credentials()) == [
        "staging: vault_gpu_worker_key is used but not in vault.yml.example"]
    assert vault_problems("staging", example, referenced, "$ANSIBLE_VAULT;1.2;AES256;production\n3061...", main, awx_credentials()) == [
        "staging: vault.yml is not encrypted with the vault id staging"]
    assert vault_problems("staging", example, referenced, "$ANSIBLE_VAULT;1.1;AES256\n3061...", main, awx_credentials()) != []
    assert vault_problems("staging", example, referenced, None, dict(main, sciops_vault_file="inventories/production/group_vars/all/vault.yml"),
                          awx_credentials()) != []
    credentials = [dict(c, inputs={"vault_id": "production"}) if c["name"] == "sciops staging vault" else c for c in awx_credentials()]
    assert vault_problems("staging", example, referenced, None, main, credentials) == [
        "staging: AWX's vault credential has the vault ids ['production']"]
