"""GPU workers on nodes with fake GPUs (tests/gpu/fake_nvidia_smi.py, a test double of nvidia-smi)
running the stand-in compute service (tests/gpu/standin_alchemiscale.py, a test double of
`alchemiscale compute synchronous`) against the tests' compute API on each node's loopback
(tests/gpu/fake_compute_api.py): the layout for 4, 1 and 2 GPUs with 2 services per GPU, each
service seeing exactly its GPU's UUID (as the compute API recorded it), restarts after a kill, the
start limit of a crash loop, deregistration on stop, the driver sentinel, the no-GPU refusal, the
settings validation, the daemon.json merge, a second converge and check mode. Destructive tests
run on mol-gpu-b and put the node back as they found it."""
from __future__ import annotations

import json
import re
import time

import pytest

from sciops_testing import journal_after, journal_cursor, node, run_playbook

testinfra_hosts = ["mol-gpu-a", "mol-gpu-b", "mol-gpu-c"]

GPUS = {"mol-gpu-a": 4, "mol-gpu-b": 1, "mol-gpu-c": 2}
PER_GPU = 2
PLAYBOOK = "playbooks/gpu_workers.yml"
KEY = "molecule-compute-key-never-printed"
ETC = "/etc/sciops-test/gpu"
CONF = "/etc/sciops/gpu-worker"


def hostname(host):
    return host.backend.get_hostname()


def fake_gpus(host):
    return json.loads(host.file(f"{ETC}/gpus.json").content_string)["gpus"]


def records(host):
    return json.loads(host.check_output(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:8765/records\").read().decode())'"))


def live(host):
    """The newest registration of each worker name that has not deregistered."""
    newest = {}
    for record in records(host):
        newest[record["name"]] = record
    return {name: record for name, record in newest.items() if record["deregistered_at"] is None}


def show(host, unit, *props):
    out = host.check_output(f"systemctl show {unit} -p {','.join(props)}")
    return dict(line.split("=", 1) for line in out.splitlines())


def wait(predicate, timeout=45, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def unit(name):
    return f"sciops-gpu-worker@{name}.service"


def restarted(host, worker, old_pid):
    """The unit's state once it runs again under another main process, else None."""
    state = show(host, unit(worker), "MainPID", "NRestarts", "ActiveState")
    return state if state["ActiveState"] == "active" and state["MainPID"] not in ("0", old_pid) else None


def at_start_limit(host, worker):
    """The unit's state once systemd gave up on it (start limit hit), else None."""
    state = show(host, unit(worker), "ActiveState", "Result", "NRestarts")
    return state if state["Result"] == "start-limit-hit" else None


def worker_journal(host, cursor, worker, needle=""):
    """The worker's journal since cursor, if it holds needle (else "")."""
    text = journal_after(host, cursor, unit(worker))
    return text if needle in text else ""


def flat(text):
    return " ".join(text.split())


# --- layout: 4, 1 and 2 GPUs, 2 services per GPU -------------------------------------------------
def test_one_service_per_slot_of_each_gpu_pinned_by_uuid(host):
    name = hostname(host)
    gpus = fake_gpus(host)
    assert len(gpus) == GPUS[name]
    running = host.check_output("systemctl list-units 'sciops-gpu-worker@*' --state=running --no-legend --plain").split("\n")
    running = sorted(line.split()[0] for line in running if line.strip())
    expected = sorted(unit(f"{name}-gpu{k}-{slot}") for k in range(len(gpus)) for slot in range(1, PER_GPU + 1))
    assert running == expected
    cores = int(host.check_output("nproc --all"))
    for k, gpu in enumerate(gpus):
        for slot in range(1, PER_GPU + 1):
            worker = f"{name}-gpu{k}-{slot}"
            props = show(host, unit(worker), "Environment", "CPUAffinity", "Restart", "TimeoutStopUSec",
                         "StartLimitBurst", "User")
            env = dict(item.split("=", 1) for item in props["Environment"].split())
            assert env["CUDA_VISIBLE_DEVICES"] == gpu["uuid"]
            assert int(env["OPENMM_CPU_THREADS"]) == max(1, cores // (len(gpus) * PER_GPU))
            assert props["CPUAffinity"], worker
            assert (props["Restart"], props["TimeoutStopUSec"], props["StartLimitBurst"], props["User"]) == (
                "on-failure", "30s", "3", "alchemiscale")
            for base in ("shared", "scratch"):
                folder = host.file(f"/var/lib/alchemiscale/{base}/{worker}")
                assert folder.is_directory and folder.user == "alchemiscale"
            settings = host.file(f"{CONF}/{worker}.yaml")
            assert (settings.user, settings.group, settings.mode) == ("alchemiscale", "alchemiscale", 0o600)


def test_each_worker_sees_exactly_its_gpu(host):
    name = hostname(host)
    gpus = fake_gpus(host)
    count = len(gpus) * PER_GPU
    seen = wait(lambda: live(host) if len(live(host)) == count else None)
    assert seen, records(host)
    assert sorted(seen) == sorted(f"{name}-gpu{k}-{slot}" for k in range(len(gpus)) for slot in range(1, PER_GPU + 1))
    for worker, record in seen.items():
        k = int(worker.rsplit("-", 2)[1][3:])
        assert record["cuda_visible_devices"] == gpus[k]["uuid"], worker
        assert record["user"] == "alchemiscale" and record["cwd"] == f"/var/lib/alchemiscale/scratch/{worker}"
        assert len(record["cpus"]) == int(record["openmm_cpu_threads"])
    # Every GPU is seen by exactly its PER_GPU services, and by no other.
    by_uuid = {}
    for record in seen.values():
        by_uuid.setdefault(record["cuda_visible_devices"], []).append(record["name"])
    assert sorted(by_uuid) == sorted(gpu["uuid"] for gpu in gpus)
    assert all(len(names) == PER_GPU for names in by_uuid.values())
    # They heartbeat.
    assert wait(lambda: all(record["heartbeats"] > 0 for record in live(host).values()))
    print(f"{name}: {len(gpus)} GPUs, {count} services, each registered with its own GPU's UUID")


def test_the_settings_file_has_alchemiscales_layout(host):
    worker = f"{hostname(host)}-gpu0-1"
    settings = json.loads(host.check_output(f"cat {CONF}/{worker}.yaml"))
    assert sorted(settings) == ["init", "start"]
    init = settings["init"]
    assert (init["name"], init["shared_basedir"], init["scratch_basedir"], init["key"]) == (
        worker, f"/var/lib/alchemiscale/shared/{worker}", f"/var/lib/alchemiscale/scratch/{worker}", KEY)
    assert init["api_url"] == "http://127.0.0.1:8765" and init["scopes"] == ["*-*-*"] and init["heartbeat_interval"] == 2


def test_the_sentinel_timer_is_scheduled(host):
    timer = host.service("sciops-gpu-sentinel.timer")
    assert timer.is_enabled and timer.is_running
    assert show(host, "sciops-gpu-sentinel.timer", "NextElapseUSecRealtime")["NextElapseUSecRealtime"]
    assert host.run("systemctl start sciops-gpu-sentinel.service").rc == 0


# --- behaviour, on mol-gpu-b (1 GPU, 2 services) ------------------------------------------------
@pytest.fixture(scope="module")
def b():
    return node("mol-gpu-b")


def test_a_killed_worker_is_restarted(b):
    worker = "mol-gpu-b-gpu0-1"
    before = show(b, unit(worker), "MainPID", "NRestarts")
    b.check_output(f"kill -9 {before['MainPID']}")
    after = wait(lambda: restarted(b, worker, before["MainPID"]))
    assert after, show(b, unit(worker), "MainPID", "NRestarts", "ActiveState")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    # The new process registered again, with the same GPU.
    record = wait(lambda: live(b).get(worker) if live(b).get(worker, {}).get("pid") == int(after["MainPID"]) else None)
    assert record and record["cuda_visible_devices"] == fake_gpus(b)[0]["uuid"]


def test_stop_deregisters(b):
    worker = "mol-gpu-b-gpu0-2"
    registered = wait(lambda: live(b).get(worker))
    started = time.monotonic()
    b.check_output(f"systemctl stop {unit(worker)}")
    took = time.monotonic() - started
    mine = [record for record in records(b) if record["id"] == registered["id"]]
    assert mine[0]["deregistered_at"] is not None
    assert f"Deregistered compute service {registered['id']}" in b.check_output(f"journalctl -u {unit(worker)} -o cat -n 20")
    print(f"stop and deregistration: {took:.1f} s")
    b.check_output(f"systemctl start {unit(worker)}")
    assert wait(lambda: live(b).get(worker))


def test_a_crash_loop_stops_at_the_start_limit(b):
    worker = "mol-gpu-b-gpu0-2"
    other = "mol-gpu-b-gpu0-1"
    b.check_output(f"systemctl reset-failed {unit(worker)}")  # earlier tests' starts count towards the limit too
    cursor = journal_cursor(b)
    b.check_output("systemctl stop sciops-test-compute-api.service")
    try:
        b.run(f"systemctl restart {unit(worker)}")
        journal = wait(lambda: worker_journal(b, cursor, worker, "Start request repeated too quickly"), timeout=60)
        assert journal, worker_journal(b, cursor, worker)
        state = show(b, unit(worker), "ActiveState", "NRestarts")
        # systemd 252 keeps Result=exit-code here (newer ones say start-limit-hit). What counts: StartLimitBurst=3
        # starts (the restart and two automatic ones), then the next automatic restart is refused, and nothing
        # restarts it later.
        assert state["ActiveState"] == "failed", state
        assert journal.count("Started sciops-gpu-worker@") == 3, journal
        assert journal.count("unreachable") == 3
        time.sleep(3)
        assert show(b, unit(worker), "ActiveState", "NRestarts") == state
        # A service that was already running rides out the API's absence (its failed heartbeats are logged).
        assert b.service(unit(other)).is_running
        print("\n".join(line for line in journal.splitlines() if "restart counter" in line or "too quickly" in line))
    finally:
        b.check_output("systemctl start sciops-test-compute-api.service")
        wait(lambda: b.run("python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8765/ping\")'").rc == 0)
        b.check_output(f"systemctl reset-failed {unit(worker)} && systemctl start {unit(worker)}")
    assert wait(lambda: live(b).get(worker))


def test_the_sentinel_stops_the_workers_on_a_driver_mismatch(b):
    # The timer may run the sentinel in the same second as the start below (a clean-clone run saw two runs and two
    # lines): it is stopped for the test and started again at the end, so exactly this run is checked.
    b.check_output("systemctl stop sciops-gpu-sentinel.timer")
    cursor = journal_cursor(b)
    b.check_output(f"echo 535.161.07 > {ETC}/module-version")  # the module still loaded, the library upgraded
    try:
        assert b.run("systemctl start sciops-gpu-sentinel.service").rc != 0
        stopped = wait(lambda: all(not b.service(unit(f"mol-gpu-b-gpu0-{slot}")).is_running for slot in (1, 2)))
        assert stopped
        # journald may write the line a moment after the unit's process exited: wait for it.
        lines = wait(lambda: [line for line in journal_after(b, cursor, "sciops-gpu-sentinel.service").splitlines()
                              if "does not match" in line], timeout=20)
        assert lines == [
            "sciops-gpu-sentinel: NVIDIA kernel module 535.161.07 (/etc/sciops-test/gpu/module-version) does not match the "
            "user-space library 535.183.01 (/opt/sciops-test/gpu/lib/libnvidia-ml.so.*): GPU workers stopped until the node "
            "reboots (marked in /run/reboot-required)"], journal_after(b, cursor)
        assert "System restart required" in b.file("/run/reboot-required").content_string
        # Both deregistered, and none starts while the mismatch lasts (ExecStartPre), without a restart loop.
        assert wait(lambda: not live(b))
        assert b.run("systemctl start sciops-gpu-worker@mol-gpu-b-gpu0-1.service").rc != 0
        assert show(b, unit("mol-gpu-b-gpu0-1"), "NRestarts", "ActiveState")["ActiveState"] != "active"
        # The fake nvidia-smi fails like the real one.
        assert "Driver/library version mismatch" in b.run("/opt/sciops-test/gpu/bin/nvidia-smi --query-gpu=index,uuid "
                                                          "--format=csv,noheader").stdout
    finally:
        b.check_output(f"echo 535.183.01 > {ETC}/module-version && rm -f /run/reboot-required")
        b.check_output("systemctl reset-failed && systemctl start sciops-gpu-workers.target sciops-gpu-sentinel.timer")
    assert wait(lambda: len(live(b)) == 2)


# --- the playbook: refusals, merge, second run, check mode ----------------------------------------
def test_a_node_without_a_gpu_is_refused(b):
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "-e", json.dumps({
        "gpu_worker_nvidia_smi_command": ["/opt/sciops-test/gpu/bin/nvidia-smi", f"--fake-gpus={ETC}/none.json"]}))
    assert run.rc != 0
    assert "No NVIDIA GPU found on mol-gpu-b" in flat(run.output) and "gpu_worker_cpu_only: true" in flat(run.output)
    assert "No devices were found" in flat(run.output)
    assert len(live(b)) == 2  # the running workers are left alone


def test_cpu_only_workers_are_planned_without_a_gpu_in_check_mode(b):
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "--check", "--diff", "-e", json.dumps({
        "gpu_worker_nvidia_smi_command": ["/opt/sciops-test/gpu/bin/nvidia-smi", f"--fake-gpus={ETC}/none.json"],
        "gpu_worker_cpu_only": True}))
    assert run.rc == 0, run.output[-3000:]
    assert "mol-gpu-b-cpu-1" in run.output and run.recap()["mol-gpu-b"]["changed"] > 0
    # Check mode changed nothing: no CPU worker, the GPU workers as they were.
    assert not b.file(f"{CONF}/mol-gpu-b-cpu-1.yaml").exists
    assert len(live(b)) == 2
    assert KEY not in run.output


def test_an_unknown_setting_is_refused_by_name(b):
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "-e", json.dumps({
        "gpu_worker_settings": {"heartbeat_intervall": 5, "scopes": ["*-*-*"]}}))
    assert run.rc != 0
    assert ("gpu_worker_settings: unknown key 'heartbeat_intervall' (alchemiscale ignores unknown settings silently, so "
            "the role refuses them; did you mean heartbeat_interval?)") in flat(run.output)
    assert run.recap()["mol-gpu-b"]["changed"] == 0


def test_a_smaller_layout_stops_and_removes_the_extra_services(b):
    extra = "mol-gpu-b-gpu0-2"
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "-e", json.dumps({"gpu_worker_services_per_gpu": 1}))
    assert run.rc == 0, run.output[-3000:]
    assert not b.service(unit(extra)).is_running and not b.service(unit(extra)).is_enabled
    assert not b.file(f"{CONF}/{extra}.yaml").exists
    assert not b.file(f"/etc/systemd/system/sciops-gpu-worker@{extra}.service.d").exists
    assert sorted(live(b)) == ["mol-gpu-b-gpu0-1"]  # the extra one deregistered
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b")
    assert run.rc == 0, run.output[-3000:]
    assert wait(lambda: len(live(b)) == 2)


def test_daemon_json_keeps_its_keys_and_a_second_run_changes_nothing(b):
    daemon = json.loads(b.file("/etc/docker/daemon.json").content_string)
    assert daemon["log-driver"] == "journald" and daemon["data-root"] == "/srv/docker"
    assert daemon["runtimes"] == {"runsc": {"path": "/usr/bin/runsc"},
                                  "nvidia": {"path": "nvidia-container-runtime", "args": []}}
    pids = {slot: show(b, unit(f"mol-gpu-b-gpu0-{slot}"), "MainPID")["MainPID"] for slot in (1, 2)}
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b")
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] == 0, run.output[-3000:]
    assert {slot: show(b, unit(f"mol-gpu-b-gpu0-{slot}"), "MainPID")["MainPID"] for slot in (1, 2)} == pids
    assert KEY not in run.output


def test_check_mode_tells_the_truth_and_changes_nothing(b):
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "--check")
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] == 0, run.output[-3000:]
    # A drifted node: check mode reports the change and leaves it; a run repairs it and restarts that worker only.
    dropin = "/etc/systemd/system/sciops-gpu-worker@mol-gpu-b-gpu0-2.service.d/10-layout.conf"
    b.check_output(f"sed -i 's/^Environment=OPENMM_CPU_THREADS=.*/Environment=OPENMM_CPU_THREADS=64/' {dropin}")
    drifted = b.file(dropin).content_string
    pids = {slot: show(b, unit(f"mol-gpu-b-gpu0-{slot}"), "MainPID")["MainPID"] for slot in (1, 2)}
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "--check")
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] >= 1, run.output[-3000:]
    assert b.file(dropin).content_string == drifted
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b")
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] >= 1
    assert "OPENMM_CPU_THREADS=64" not in b.file(dropin).content_string
    after = {slot: show(b, unit(f"mol-gpu-b-gpu0-{slot}"), "MainPID")["MainPID"] for slot in (1, 2)}
    assert after[1] == pids[1] and after[2] != pids[2]
    assert KEY not in run.output


def test_turning_the_sentinel_off_removes_its_timer_and_its_start_check(b):
    sentinel = "/usr/local/sbin/sciops-gpu-sentinel"
    off = json.dumps({"gpu_worker_sentinel": False})
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "-e", off)
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] >= 1, run.output[-3000:]
    assert b.run("systemctl is-active sciops-gpu-sentinel.timer").stdout.strip() != "active"
    assert not b.file("/etc/systemd/system/sciops-gpu-sentinel.timer").exists and not b.file(sentinel).exists
    assert "sciops-gpu-sentinel" not in b.check_output("systemctl list-timers --all --no-legend")
    assert sentinel not in show(b, unit("mol-gpu-b-gpu0-1"), "ExecStartPre").get("ExecStartPre", "")
    assert wait(lambda: len(live(b)) == 2)  # the workers run on without it
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b", "-e", off)
    assert run.rc == 0 and run.recap()["mol-gpu-b"]["changed"] == 0, run.output[-3000:]
    # Back on: the timer is scheduled again and each start checks the driver again.
    run = run_playbook(PLAYBOOK, "--limit", "mol-gpu-b")
    assert run.rc == 0, run.output[-3000:]
    assert b.service("sciops-gpu-sentinel.timer").is_running and b.service("sciops-gpu-sentinel.timer").is_enabled
    assert sentinel in show(b, unit("mol-gpu-b-gpu0-1"), "ExecStartPre")["ExecStartPre"]
    assert wait(lambda: len(live(b)) == 2)


def test_the_status_playbook_shows_every_worker_its_gpu_state_and_heartbeat():
    run = run_playbook("playbooks/gpu_worker_status.yml")
    assert run.rc == 0, run.output[-3000:]
    text = flat(run.output)
    for name, count in GPUS.items():
        for k in range(count):
            for slot in range(1, PER_GPU + 1):
                pattern = rf"{name}-gpu{k}-{slot} GPU {k} GPU-[0-9a-f-]+ active/running restarts \d+ last heartbeat 20\S+"
                assert re.search(pattern, text), (name, k, slot)
    print("\n".join(re.findall(r"mol-gpu-\S+ GPU \d GPU-\S+ \S+ restarts \d+ last heartbeat \S+", text)))
