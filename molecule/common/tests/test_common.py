"""Behaviour of the common role (base hardening) on mol-common-hard, checked from the node itself
and from mol-common-plain, a node of the same network without the role."""
import json
import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import testinfra.utils.ansible_runner

from sciops_testing import node, run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("common")

HARD = "172.30.45.10"
CONVERGE = "molecule/common/converge.yml"
# The hardened node must score at least this many lynis hardening-index points above the plain
# node. Measured on Debian 12 with lynis 3.0.8: 73 hardened, 61 plain (12 points); 8 leaves headroom.
LYNIS_MARGIN = 8


@pytest.fixture(scope="module")
def plain():
    return node("mol-common-plain")


def ssh(client, user, command, key=None, options=""):
    """Run `command` on the hardened node over SSH from `client` as `user` (key /root/<key>.key)."""
    key = key or user
    return client.run(
        f"ssh -i /root/{key}.key -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {options} "
        f"{user}@{HARD} {shlex.quote(command)}")


def tcp_connects(client, addr, port, timeout=3):
    """True when a TCP connection from `client` to addr:port completes within `timeout` seconds."""
    return client.run(f"timeout {timeout} bash -c 'exec 3<>/dev/tcp/{addr}/{port}'").rc == 0


# --- SSH and users -----------------------------------------------------------------------------

def test_sshd_effective_settings(host):
    out = host.run("sshd -T")
    assert out.rc == 0, out.stderr
    settings = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitemptypasswords"] == "no"
    assert settings["permitrootlogin"] == "without-password"  # sshd -T spells prohibit-password so
    assert settings["x11forwarding"] == "no"
    assert settings["allowtcpforwarding"] == "no"
    assert settings["maxauthtries"] == "3"
    service = host.service("ssh")
    assert service.is_running and service.is_enabled


def test_admin_logs_in_with_key_and_uses_sudo(host, plain):
    out = ssh(plain, "ada", "id -nG; sudo -n true && echo SUDO-OK")
    assert out.rc == 0, out.stderr
    assert "sciops-admins" in out.stdout.split()
    assert "SUDO-OK" in out.stdout


def test_password_login_is_refused(host, plain):
    out = ssh(plain, "ada", "true", options=(
        "-o PreferredAuthentications=password,keyboard-interactive -o PubkeyAuthentication=no"))
    assert out.rc != 0
    assert "Permission denied" in out.stderr


def test_only_the_listed_keys_log_in(host, plain):
    out = ssh(plain, "ada", "true", key="bob")
    assert out.rc != 0
    assert "Permission denied" in out.stderr


def test_user_outside_the_admin_group_cannot_sudo(host, plain):
    out = ssh(plain, "bob", "echo LOGGED-IN; sudo -n true")
    assert "LOGGED-IN" in out.stdout, out.stderr
    assert out.rc != 0
    assert "sudo" in out.stderr
    assert "sciops-admins" not in host.user("bob").groups


def test_absent_user_is_removed(host):
    assert not host.user("olduser").exists


def test_sessions_have_no_core_files(host, plain):
    out = ssh(plain, "ada", "ulimit -Hc")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "0"


# --- Firewall -----------------------------------------------------------------------------------

def test_ssh_is_reachable_and_an_undeclared_port_is_not(host, plain):
    assert tcp_connects(plain, HARD, 22)
    assert not tcp_connects(plain, HARD, 8081)
    # The listener is really up: it answers on the node itself.
    assert host.run("curl -sf -o /dev/null http://127.0.0.1:8081/").rc == 0


def test_a_rule_with_sources_admits_only_those_sources(host, plain):
    # 8082: declared for the plain node's address; 8083: declared for 192.0.2.0/24 and 2001:db8::/32.
    assert plain.run(f"curl -sf --max-time 5 -o /dev/null http://{HARD}:8082/").rc == 0
    assert not tcp_connects(plain, HARD, 8083)
    assert host.run("curl -sf -o /dev/null http://127.0.0.1:8083/").rc == 0


def test_other_tables_survive_a_restart_of_the_firewall(host):
    # Docker's embedded DNS lives in table ip nat of every node; the role must never flush it.
    assert host.run("systemctl restart nftables").rc == 0
    assert host.service("nftables").is_enabled
    tables = host.check_output("nft list tables").splitlines()
    assert "table inet sciops" in tables and "table ip nat" in tables
    assert host.run("getent hosts mol-common-plain").rc == 0
    chain = host.check_output("nft list chain inet sciops input")
    assert "policy drop" in chain and "udp dport 8084 accept" in chain


# --- Updates, time, journal ----------------------------------------------------------------------

def test_unattended_upgrades_takes_only_the_security_archive(host):
    out = host.run("unattended-upgrade --dry-run --debug 2>&1 | grep -m1 '^Allowed origins are:'")
    assert out.rc == 0, out.stdout
    origins = [o.strip() for o in out.stdout.split(":", 1)[1].split(",") if o.strip()]
    assert "origin=Debian" in origins and "codename=bookworm-security" in origins
    labels = {o for o in origins if o.startswith("label=")}
    assert labels == {"label=Debian-Security"}
    config = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config


def test_apt_timers_are_enabled_with_a_next_run(host):
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        show = host.check_output(f"systemctl show {timer} -p UnitFileState -p ActiveState -p NextElapseUSecRealtime")
        props = dict(line.split("=", 1) for line in show.splitlines())
        assert props["UnitFileState"] == "enabled" and props["ActiveState"] == "active", props
        assert props["NextElapseUSecRealtime"], props


def test_time_synchronisation_is_configured_and_enabled(host):
    config = host.check_output("systemd-analyze cat-config systemd/timesyncd.conf")
    ntp = [line for line in config.splitlines() if line.startswith("NTP=")]
    assert ntp[-1] == "NTP=ntp1.example.test ntp2.example.test"
    assert host.service("systemd-timesyncd").is_enabled
    assert host.check_output("timedatectl show -p Timezone --value") == "Etc/UTC"
    if host.run("systemd-detect-virt --container").rc == 0:
        # systemd skips timesyncd in containers (ConditionVirtualization=!container): the clock is
        # the host's. The unit is ready and its condition is the only thing that holds it back.
        cond = host.check_output("systemctl show systemd-timesyncd -p ConditionResult --value")
        assert cond == "no"
    else:
        assert host.service("systemd-timesyncd").is_running


def test_journal_uses_the_size_limits(host):
    lines = host.check_output("journalctl -u systemd-journald --no-pager -o cat | grep -E 'Journal .* max '")
    last = lines.splitlines()[-1]
    assert re.match(r"^System Journal \(/var/log/journal/.*\) is .*, max 200\.0M,", last), last


# --- Check mode, bad input -----------------------------------------------------------------------

def test_check_mode_on_a_converged_node_changes_nothing(host):
    run = run_playbook(CONVERGE, "--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    assert run.total("failed") == 0 and run.total("changed") == 0, run.output[-3000:]


@pytest.mark.parametrize("bad, names", [
    ({"common_firewall_rules": [{"port": 8080, "proto": "icmp"}]}, ["common_firewall_rules", "icmp"]),
    ({"common_ssh_permit_root_login": "yes"}, ["common_ssh_permit_root_login"]),
    ({"common_host_users": [{"name": "eve", "ssh_keys": ["ssh-ed25519 AAAA"], "admin": "maybe"}]},
     ["common_host_users", "admin"]),
    ({"common_group_firewall_rules": [{"port": 8080, "sources": ["not-an-address"]}]},
     ["common_*firewall_rules", "not-an-address"]),
])
def test_bad_input_fails_before_any_change_naming_the_variable(host, bad, names):
    run = run_playbook(CONVERGE, "--limit", "mol-common-hard", "-e", json.dumps(bad))
    assert run.rc != 0
    assert run.total("changed") == 0, run.output[-3000:]
    for name in names:
        assert name in run.output, run.output[-3000:]


# --- lynis -----------------------------------------------------------------------------------------

def lynis_index(target):
    out = target.run("lynis audit system --quick --no-colour > /tmp/lynis.out 2>&1; "
                     "grep '^hardening_index=' /var/log/lynis-report.dat")
    assert out.rc == 0, out.stdout + out.stderr
    return int(out.stdout.strip().split("=", 1)[1])


def test_lynis_hardening_index_is_higher_than_on_a_plain_node(host, plain):
    with ThreadPoolExecutor(max_workers=2) as pool:
        hard_future, plain_future = pool.submit(lynis_index, host), pool.submit(lynis_index, plain)
        hardened, baseline = hard_future.result(), plain_future.result()
    print(f"\nlynis hardening_index: mol-common-hard={hardened} mol-common-plain={baseline} "
          f"(difference {hardened - baseline}, required at least {LYNIS_MARGIN})")
    assert hardened >= baseline + LYNIS_MARGIN


# --- Last: a reboot (ends the probe listeners) -------------------------------------------------------

def test_firewall_and_settings_come_back_after_a_reboot(host, plain):
    subprocess.run(["docker", "restart", "mol-common-hard"], check=True, capture_output=True, timeout=120)
    # systemd's bus appears a moment after the container starts: ask until it answers.
    boot = host.run("for i in $(seq 120); do s=$(systemctl is-system-running --wait 2>/dev/null); "
                    "[ -n \"$s\" ] && break; sleep 1; done; echo \"$s\"")
    assert boot.stdout.strip() in ("running", "degraded"), boot.stdout + boot.stderr
    chain = host.check_output("nft list chain inet sciops input")
    assert "policy drop" in chain and "tcp dport 22 accept" in chain
    assert "table ip nat" in host.check_output("nft list tables")
    assert tcp_connects(plain, HARD, 22)
    assert ssh(plain, "ada", "sudo -n true").rc == 0
