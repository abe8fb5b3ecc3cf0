"""sciops.platform.audit (plugins/callback/audit.py): real ansible-playbook runs through the project's
ansible.cfg on local hosts, and what each leaves in the audit log."""
from __future__ import annotations

import datetime
import http.server
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
SECRET_VAULTED = "vaulted-Zq8xW3pL-never-in-the-record"
SECRET_EXTRA = "extra-Kd72mQ9s-never-in-the-record"
SECRET_NOLOG = "nolog-Vb41tY6u-never-in-the-record"


def load_plugin():
    spec = importlib.util.spec_from_file_location("sciops_audit_callback", ROOT / "plugins" / "callback" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_inventory(tmp_path, environment="staging", unreachable=False):
    """Two hosts run on this machine (connection local) with an environment name, as an inventory's group_vars give it."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    hosts = {"alpha": {}, "beta": {}}
    if unreachable:
        # Nothing listens on port 9 of loopback: the SSH connection is refused at once.
        hosts["gamma"] = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                          "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"nodes": {"hosts": hosts}}}}))
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump({
        "sciops_environment": environment, "ansible_connection": "local", "ansible_python_interpreter": sys.executable}))
    return inventory


def write_playbook(tmp_path, name, tasks, hosts="nodes"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump([{"name": "audit test", "hosts": hosts, "gather_facts": False, "tasks": tasks}], sort_keys=False))
    return path


def environ(log, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SCIOPS_AUDIT_", "GITHUB_", "GITLAB_", "CI_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", SCIOPS_AUDIT_LOG=str(log))
    env.update(extra)
    return env


def start(log, inventory, playbooks, *args, env=None):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory)] + [str(p) for p in playbooks] + list(args)
    return subprocess.Popen(cmd, cwd=ROOT, env=environ(log, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(log, inventory, playbooks, *args, env=None):
    proc = start(log, inventory, playbooks, *args, env=env)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def records(log):
    return [json.loads(line) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []


CHANGE_ON_ALPHA = [
    {"name": "Change something on alpha", "ansible.builtin.command": "true", "changed_when": "inventory_hostname == 'alpha'"},
    {"name": "Say hello", "ansible.builtin.debug": {"msg": "hello"}},
]


def test_a_run_with_changes_leaves_one_record_of_who_what_where_when_and_the_counts(tmp_path):
    log = tmp_path / "logs" / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    before = datetime.datetime.now(datetime.timezone.utc)
    rc, out, err = run(log, inventory, [playbook], "--limit", "alpha,beta", "--diff")
    after = datetime.datetime.now(datetime.timezone.utc)
    assert rc == 0, out + err
    (record,) = records(log)
    assert oct(log.stat().st_mode & 0o777) == "0o640"
    assert record["record"] == "sciops.platform.audit" and record["version"] == 1
    assert record["result"] == "ok" and record["exit_status"] == rc == 0
    assert record["playbooks"] == [str(playbook)]
    assert record["inventory"] == [str(inventory)]
    assert record["environment"] == ["staging"]
    assert record["limit"] == "alpha,beta"
    assert record["check_mode"] is False and record["diff_mode"] is True
    assert record["changed"] == 1
    assert record["hosts"]["alpha"] == {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0}
    assert record["hosts"]["beta"]["changed"] == 0 and record["hosts"]["beta"]["ok"] == 2
    assert record["totals"]["ok"] == 4
    started = datetime.datetime.strptime(record["start"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    ended = datetime.datetime.strptime(record["end"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert before <= started <= ended <= after
    assert record["who"]["user"] and record["who"]["controller"]
    assert record["awx"] is None and record["ci"] is None
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert record["git"]["commit"] == head
    assert record["ansible"].startswith("2.")


def test_a_failed_host_is_recorded_as_failed_with_ansible_playbooks_exit_status(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "fail.yml", [
        {"name": "Break on beta", "ansible.builtin.fail": {"msg": "broken"}, "when": "inventory_hostname == 'beta'"},
        {"name": "Carry on", "ansible.builtin.command": "true", "changed_when": True},
    ])
    rc, out, err = run(log, inventory, [playbook])
    assert rc == 2, out + err
    (record,) = records(log)
    assert record["result"] == "failed" and record["exit_status"] == 2
    assert record["hosts"]["beta"]["failed"] == 1 and record["hosts"]["alpha"]["failed"] == 0
    assert record["hosts"]["alpha"]["changed"] == 1 and record["changed"] == 1


def test_an_unreachable_host_is_recorded_as_unreachable(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path, unreachable=True)
    playbook = write_playbook(tmp_path, "ping.yml", [{"name": "Reach", "ansible.builtin.ping": {}}])
    rc, out, err = run(log, inventory, [playbook])
    assert rc == 4, out + err
    (record,) = records(log)
    assert record["result"] == "unreachable" and record["exit_status"] == 4
    assert record["hosts"]["gamma"]["unreachable"] == 1 and record["hosts"]["alpha"]["ok"] == 1


def test_check_mode_is_recorded_and_the_changes_it_would_make_are_counted(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path, environment="production")
    target = tmp_path / "would-be-written"
    playbook = write_playbook(tmp_path, "check.yml", [
        {"name": "Write a file", "ansible.builtin.copy": {"content": "x\n", "dest": str(target) + "-{{ inventory_hostname }}", "mode": "0644"}},
    ])
    rc, out, err = run(log, inventory, [playbook], "--check")
    assert rc == 0, out + err
    assert not list(tmp_path.glob("would-be-written*"))
    (record,) = records(log)
    assert record["check_mode"] is True and record["environment"] == ["production"]
    assert record["changed"] == 2 and record["result"] == "ok"


@pytest.mark.parametrize("verbosity", ["-v", "-vvvv"])
def test_no_secret_enters_the_record_vaulted_extra_or_no_log(tmp_path, verbosity):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    vaulted = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string", "--encrypt-vault-id", "local", SECRET_VAULTED, "--name", "vault_api_key"],
        cwd=ROOT, env=environ(log), capture_output=True, text=True, check=True).stdout
    (inventory / "group_vars" / "all" / "vault.yml").write_text("---\n" + vaulted)
    assert SECRET_VAULTED not in (inventory / "group_vars" / "all" / "vault.yml").read_text()
    playbook = write_playbook(tmp_path, "secret.yml", [
        {"name": "Use the vaulted key", "ansible.builtin.command": "echo {{ vault_api_key }}", "no_log": True, "changed_when": True},
        {"name": "Handle a secret", "ansible.builtin.set_fact": {"nolog_value": SECRET_NOLOG}, "no_log": True},
        {"name": "Fail without showing it", "ansible.builtin.fail": {"msg": "{{ nolog_value }} {{ api_token }}"}, "no_log": True,
         "when": "inventory_hostname == 'beta'"},
    ])
    rc, out, err = run(log, inventory, [playbook], verbosity, "-e", "api_token=" + SECRET_EXTRA,
                       "-e", json.dumps({"nested": {"password": SECRET_EXTRA}}), env={"SCIOPS_AUDIT_DISPLAY": "true"})
    assert rc == 2, out + err
    text = log.read_text()
    (record,) = records(log)
    assert record["extra_vars"] == ["api_token", "nested"]
    assert record["hosts"]["beta"]["failed"] == 1 and record["hosts"]["alpha"]["changed"] == 1
    for secret in (SECRET_VAULTED, SECRET_EXTRA, SECRET_NOLOG):
        assert secret not in text
    # The same record on the run's output (the display option) carries no secret either.
    (line,) = [line for line in out.splitlines() if line.startswith("AUDIT ")]
    assert json.loads(line[len("AUDIT "):])["run_id"] == record["run_id"]
    for secret in (SECRET_VAULTED, SECRET_NOLOG):
        assert secret not in line


def test_two_concurrent_runs_give_two_intact_lines(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "pause.yml", [{"name": "Work a moment", "ansible.builtin.command": "sleep 1", "changed_when": True}])
    procs = [start(log, inventory, [playbook], "-e", "run_number=%d" % n) for n in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["run_id"] != second["run_id"]
    assert first["changed"] == second["changed"] == 2


def _append_many(path, marker, count):
    plugin = load_plugin()
    for n in range(count):
        plugin.append_line(path, json.dumps({"writer": marker, "n": n, "pad": marker * 70000}))


def test_the_lock_keeps_large_lines_from_concurrent_writers_whole(tmp_path):
    """Lines far above the pipe/atomic-write size, from 4 processes at once: every line parses."""
    path = str(tmp_path / "audit.jsonl")
    workers = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, marker, 20)) for marker in "abcd"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 80
    seen = {(json.loads(line)["writer"], json.loads(line)["n"]) for line in lines}
    assert len(seen) == 80


def test_one_record_for_several_playbooks_and_a_failed_first_one_stops_the_run(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    one = write_playbook(tmp_path, "one.yml", CHANGE_ON_ALPHA)
    two = write_playbook(tmp_path, "two.yml", [{"name": "Again", "ansible.builtin.command": "true", "changed_when": True}])
    rc, out, err = run(log, inventory, [one, two])
    assert rc == 0, out + err
    (record,) = records(log)
    assert record["playbooks"] == [str(one), str(two)] and record["changed"] == 3

    broken = write_playbook(tmp_path, "broken.yml", [{"name": "Break", "ansible.builtin.fail": {"msg": "no"}}])
    rc, out, err = run(log, inventory, [broken, two])
    assert rc == 2, out + err
    record = records(log)[-1]
    assert record["playbooks"] == [str(broken)] and record["result"] == "failed" and record["exit_status"] == 2


def test_a_run_that_errors_before_its_recap_is_recorded_as_aborted(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    one = write_playbook(tmp_path, "one.yml", CHANGE_ON_ALPHA)
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: nodes\n  tasks:\n    - ansible.builtin.no_such_module_here: {}\n")
    rc, out, err = run(log, inventory, [one, bad])
    assert rc != 0, out + err  # ansible-playbook exits 4 for a parse error too: only the record tells it from an unreachable host
    (record,) = records(log)
    assert record["result"] == "aborted" and record["exit_status"] is None
    assert record["playbooks"] == [str(one)] and record["changed"] == 1


def test_a_syntax_check_is_not_a_run_and_leaves_no_record(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    rc, out, err = run(log, inventory, [playbook], "--syntax-check")
    assert rc == 0, out + err
    assert not log.exists()


def test_awx_and_ci_identify_the_run(tmp_path):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    awx = {"awx_job_id": 42, "tower_job_id": 42, "awx_job_template_name": "staging | site", "awx_job_template_id": 7,
           "awx_user_name": "alice", "awx_user_email": "alice@example.org", "awx_job_launch_type": "manual",
           "awx_project_revision": "0123abc", "awx_inventory_name": "sciops staging", "tower_user_name": "alice"}
    rc, out, err = run(log, inventory, [playbook], "-e", json.dumps(awx),
                       env={"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "bob", "GITHUB_SHA": "feed", "GITHUB_RUN_ID": "99"})
    assert rc == 0, out + err
    (record,) = records(log)
    assert record["awx"] == {"inventory_name": "sciops staging", "job_id": 42, "job_launch_type": "manual",
                             "job_template_id": 7, "job_template_name": "staging | site", "project_revision": "0123abc",
                             "user_name": "alice"}
    assert "alice@example.org" not in log.read_text()
    assert record["extra_vars"] == []
    assert record["ci"] == {"forge": "github", "actor": "bob", "sha": "feed", "run_id": "99"}


class Collector(http.server.BaseHTTPRequestHandler):
    received = []
    status = 204

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.received = []
    Collector.status = 204
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_record_is_posted_to_the_team_endpoint_with_its_token(tmp_path, collector):
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    url = "http://127.0.0.1:%d/audit" % collector.server_address[1]
    token = "token-Hq27xP0w-secret"
    env = {"SCIOPS_AUDIT_URL": url, "SCIOPS_AUDIT_TOKEN": token, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    rc, out, err = run(log, inventory, [playbook], "-vvv", env=env)
    assert rc == 0, out + err
    ((path, headers, body),) = Collector.received
    assert path == "/audit" and headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer " + token
    assert json.loads(body) == records(log)[0]
    assert token not in out + err and token not in log.read_text()


def test_a_failing_endpoint_is_a_warning_and_the_run_and_the_file_go_on(tmp_path, collector):
    log = tmp_path / "audit.jsonl"
    Collector.status = 503
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    url = "http://127.0.0.1:%d/audit?key=hidden-in-query" % collector.server_address[1]
    rc, out, err = run(log, inventory, [playbook], env={"SCIOPS_AUDIT_URL": url, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"})
    assert rc == 0, out + err
    assert "could not send the record to http://127.0.0.1/audit: HTTP 503" in out + err
    assert "hidden-in-query" not in out + err
    assert len(records(log)) == 1


def test_an_unwritable_log_is_a_warning_not_a_failed_run(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    rc, out, err = run(blocker / "audit.jsonl", inventory, [playbook])
    assert rc == 0, out + err
    assert "audit: could not append the run's record to %s" % (blocker / "audit.jsonl") in out + err


def test_without_a_log_option_the_record_goes_to_the_projects_logs_folder(tmp_path):
    """The default: logs/audit.jsonl beside the ansible.cfg in use (here a copy of the project's in a temporary folder)."""
    project = tmp_path / "project"
    project.mkdir()
    config = (ROOT / "ansible.cfg").read_text().replace("./collections", str(ROOT / "collections"))
    config = config.replace("inventories/local/.vault-password", str(ROOT / "inventories/local/.vault-password"))
    (project / "ansible.cfg").write_text(config)
    inventory = write_inventory(tmp_path)
    playbook = write_playbook(tmp_path, "change.yml", CHANGE_ON_ALPHA)
    env = environ(tmp_path / "unused", ANSIBLE_CONFIG=str(project / "ansible.cfg"))
    del env["SCIOPS_AUDIT_LOG"]
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = records(project / "logs" / "audit.jsonl")
    assert record["result"] == "ok" and record["git"] is None
    assert oct((project / "logs").stat().st_mode & 0o777) == "0o750"


def test_an_ad_hoc_command_is_recorded_by_its_module_never_its_arguments(tmp_path):
    """The ad hoc command loads extra callbacks only with bin_ansible_callbacks; then it is one run as well."""
    log = tmp_path / "audit.jsonl"
    inventory = write_inventory(tmp_path)
    proc = subprocess.run([str(BIN / "ansible"), "-i", str(inventory), "nodes", "-m", "ansible.builtin.command",
                           "-a", "echo " + SECRET_EXTRA], cwd=ROOT, env=environ(log, ANSIBLE_LOAD_CALLBACK_PLUGINS="1"),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = records(log)
    assert record["playbooks"] == ["(ad hoc) ansible.builtin.command"] and record["limit"] == "nodes"
    assert record["result"] == "ok" and record["changed"] == 2 and record["environment"] == ["staging"]
    assert SECRET_EXTRA not in log.read_text()


def test_the_project_enables_the_callback():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    enabled = [name.strip() for name in config["defaults"]["callbacks_enabled"].split(",")]
    assert "sciops.platform.audit" in enabled


def test_exit_status_and_result_words():
    plugin = load_plugin()
    zero = dict.fromkeys(plugin.COUNTERS, 0)
    assert plugin.exit_status(zero) == 0
    assert plugin.exit_status(dict(zero, failed=1)) == 2
    assert plugin.exit_status(dict(zero, failed=1, unreachable=1)) == 4
    assert [plugin.result_word(s) for s in (0, 2, 4, None)] == ["ok", "failed", "unreachable", "aborted"]
