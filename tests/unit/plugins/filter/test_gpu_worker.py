"""plugins/filter/gpu_worker.py: nvidia-smi's list parsed, the layout of the compute services
(names, GPU by UUID, cores shared out), alchemiscale's settings file and its field check, and
Docker's daemon.json merged with every other key kept."""
from __future__ import annotations

import hashlib
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sciops.platform.plugins.filter.gpu_worker import (
    FilterModule,
    gpu_worker_daemon_json,
    gpu_worker_files,
    gpu_worker_gpus,
    gpu_worker_layout,
    gpu_worker_not_running,
    gpu_worker_settings_file,
    gpu_worker_status_lines,
    gpu_worker_unknown_settings,
)

UUIDS = ["GPU-0f6e4bd2-0000-4c1c-9d8c-000000000000", "GPU-1f6e4bd2-1111-4c1c-9d8c-111111111111",
         "GPU-2f6e4bd2-2222-4c1c-9d8c-222222222222", "GPU-3f6e4bd2-3333-4c1c-9d8c-333333333333"]
KNOWN = ["sleep_interval", "heartbeat_interval", "scopes", "max_tasks", "max_time", "loglevel"]


def smi(count):
    return "".join("%d, %s\n" % (index, UUIDS[index]) for index in range(count))


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "gpu_worker_gpus", "gpu_worker_layout", "gpu_worker_unknown_settings", "gpu_worker_settings_file",
        "gpu_worker_daemon_json", "gpu_worker_status_lines", "gpu_worker_not_running", "gpu_worker_files"}


def test_nvidia_smi_output_is_parsed_in_index_order():
    text = "1, %s\n0, %s\n\n" % (UUIDS[1], UUIDS[0])
    assert gpu_worker_gpus(text) == [{"index": 0, "uuid": UUIDS[0]}, {"index": 1, "uuid": UUIDS[1]}]
    assert gpu_worker_gpus("") == []
    # MIG instances are listed with MIG- UUIDs.
    assert gpu_worker_gpus("0, MIG-4a2b-77") == [{"index": 0, "uuid": "MIG-4a2b-77"}]


@pytest.mark.parametrize("text", ["Failed to initialize NVML: Driver/library version mismatch", "0, not-a-uuid",
                                  "0, %s\n0, %s" % (UUIDS[0], UUIDS[1])])
def test_anything_else_than_a_gpu_list_is_an_error(text):
    with pytest.raises(AnsibleFilterError):
        gpu_worker_gpus(text)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_two_services_per_gpu_each_on_its_gpu_with_a_share_of_the_cores(count):
    layout = gpu_worker_layout(gpu_worker_gpus(smi(count)), "gpu1", 2, 16)
    assert [worker["name"] for worker in layout] == ["gpu1-gpu%d-%d" % (k, slot) for k in range(count) for slot in (1, 2)]
    assert [worker["uuid"] for worker in layout] == [UUIDS[k] for k in range(count) for _slot in (1, 2)]
    share = 16 // (2 * count)
    assert all(worker["threads"] == share == len(worker["cpus"]) for worker in layout)
    # No two services share a core when there are enough of them.
    cores = [cpu for worker in layout for cpu in worker["cpus"]]
    assert len(cores) == len(set(cores)) == 2 * count * share


def test_more_services_than_cores_wrap_around_with_one_core_each():
    layout = gpu_worker_layout(gpu_worker_gpus(smi(4)), "n", 2, 2)
    assert [worker["cpus"] for worker in layout] == [[0], [1]] * 4
    assert all(worker["threads"] == 1 for worker in layout)


def test_a_fixed_thread_count_sets_the_share():
    layout = gpu_worker_layout(gpu_worker_gpus(smi(2)), "n", 1, 8, threads=3)
    assert [worker["cpus"] for worker in layout] == [[0, 1, 2], [3, 4, 5]]
    assert [worker["threads"] for worker in layout] == [3, 3]


def test_cpu_only_services_have_no_gpu():
    layout = gpu_worker_layout([], "n", 1, 4, cpu_only=True, cpu_only_services=2)
    assert [(worker["name"], worker["gpu"], worker["uuid"], worker["cpus"]) for worker in layout] == [
        ("n-cpu-1", None, "", [0, 1]), ("n-cpu-2", None, "", [2, 3])]


def test_no_service_per_gpu_is_refused():
    with pytest.raises(AnsibleFilterError, match="at least 1"):
        gpu_worker_layout(gpu_worker_gpus(smi(1)), "n", 0, 4)


def test_unknown_settings_are_named_with_the_closest_known_one():
    assert gpu_worker_unknown_settings({"heartbeat_interval": 5, "scopes": []}, KNOWN) == []
    assert gpu_worker_unknown_settings({"heartbeat_intervall": 5, "colour": "red"}, KNOWN) == [
        "gpu_worker_settings: unknown key 'colour' (alchemiscale ignores unknown settings silently, so the role refuses them)",
        "gpu_worker_settings: unknown key 'heartbeat_intervall' (alchemiscale ignores unknown settings silently, so the role "
        "refuses them; did you mean heartbeat_interval?)"]


def test_the_fields_the_role_sets_are_refused_in_the_settings():
    problems = gpu_worker_unknown_settings({"key": "x", "name": "y"}, KNOWN, ["key", "name"])
    assert problems == [
        "gpu_worker_settings: 'key' is set by the role (gpu_worker_key, or per service), not in gpu_worker_settings.",
        "gpu_worker_settings: 'name' is set by the role (gpu_worker_<name>, or per service), not in gpu_worker_settings."]


def test_the_settings_file_splits_init_and_start_and_leaves_out_nulls():
    settings = {"api_url": "https://c", "name": "n-gpu0-1", "max_tasks": 1, "max_time": None, "loglevel": None,
                "scopes": ["a-b-c"]}
    assert gpu_worker_settings_file(settings) == {
        "init": {"api_url": "https://c", "name": "n-gpu0-1", "scopes": ["a-b-c"]}, "start": {"max_tasks": 1}}


def test_daemon_json_merge_keeps_every_other_key():
    existing = json.dumps({"log-driver": "journald", "runtimes": {"runsc": {"path": "/usr/bin/runsc"}},
                           "default-ulimits": {"nofile": {"Hard": 64000, "Name": "nofile", "Soft": 64000}}})
    wanted = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    merged = gpu_worker_daemon_json(existing, wanted)
    assert merged == {"log-driver": "journald",
                      "runtimes": {"runsc": {"path": "/usr/bin/runsc"}, "nvidia": {"path": "nvidia-container-runtime", "args": []}},
                      "default-ulimits": {"nofile": {"Hard": 64000, "Name": "nofile", "Soft": 64000}}}
    # Idempotent: merging again gives the same object (the role then writes nothing).
    assert gpu_worker_daemon_json(json.dumps(merged), wanted) == merged
    assert gpu_worker_daemon_json("", wanted) == wanted


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_daemon_json_that_is_not_an_object_is_refused_not_overwritten(text):
    with pytest.raises(AnsibleFilterError, match="never overwrites|not a JSON object"):
        gpu_worker_daemon_json(text, {"runtimes": {}})


def test_status_lines():
    rows = [{"name": "n-gpu0-1", "gpu": 0, "uuid": UUIDS[0], "state": "active/running", "result": "success",
             "restarts": "0", "last_heartbeat": "2026-12-07T10:00:00+0000"},
            {"name": "n-gpu0-2", "gpu": 0, "uuid": UUIDS[0], "state": "failed/failed", "result": "exit-code",
             "restarts": "2", "last_heartbeat": "none"}]
    assert gpu_worker_status_lines(rows, "n") == [
        "n-gpu0-1  GPU 0 %s  active/running  restarts 0  last heartbeat 2026-12-07T10:00:00+0000" % UUIDS[0],
        "n-gpu0-2  GPU 0 %s  failed/failed (exit-code)  restarts 2  last heartbeat none" % UUIDS[0]]
    assert gpu_worker_status_lines([], "n") == ["n: no compute service"]


def test_only_services_not_active_or_not_enabled_are_started():
    layout = [{"name": "n-gpu0-%d" % slot} for slot in (1, 2, 3, 4)]
    show = ("Id=sciops-gpu-worker@n-gpu0-1.service\nActiveState=active\nUnitFileState=enabled\n\n"
            "Id=sciops-gpu-worker@n-gpu0-2.service\nActiveState=failed\nUnitFileState=enabled\n\n"
            "Id=sciops-gpu-worker@n-gpu0-3.service\nActiveState=active\nUnitFileState=disabled\n")
    assert [worker["name"] for worker in gpu_worker_not_running(layout, show)] == ["n-gpu0-2", "n-gpu0-3", "n-gpu0-4"]
    assert gpu_worker_not_running([], "") == []


def test_each_service_gets_its_settings_file_and_drop_in_with_their_sha1():
    layout = gpu_worker_layout([{"index": 0, "uuid": "GPU-aaa"}, {"index": 1, "uuid": "GPU-bbb"}], "node1",
                               services_per_gpu=2, cpu_count=4)
    files = gpu_worker_files(layout, {"api_url": "https://compute.example", "key": "s3cret", "max_tasks": 5},
                             "/srv/shared", "/srv/scratch", "/etc/sciops/gpu-worker", "/etc/systemd/system", "compute",
                             "Ansible managed")
    assert [(f["name"], f["kind"]) for f in files][:2] == [("node1-gpu0-1", "settings"), ("node1-gpu0-1", "dropin")]
    assert len(files) == 8
    settings = json.loads(files[0]["content"])
    assert files[0]["path"] == "/etc/sciops/gpu-worker/node1-gpu0-1.yaml" and files[0]["mode"] == "0600"
    assert files[0]["owner"] == files[0]["group"] == "compute"
    assert settings == {"init": {"api_url": "https://compute.example", "key": "s3cret", "name": "node1-gpu0-1",
                                 "shared_basedir": "/srv/shared/node1-gpu0-1",
                                 "scratch_basedir": "/srv/scratch/node1-gpu0-1"},
                        "start": {"max_tasks": 5}}
    assert files[0]["content"].endswith("}\n") and '\n  "init": {\n' in files[0]["content"]  # to_nice_json(indent=2)
    dropin = files[3]
    assert dropin["path"] == "/etc/systemd/system/sciops-gpu-worker@node1-gpu0-2.service.d/10-layout.conf"
    assert dropin["content"] == (
        "# Ansible managed (gpu_worker): node1-gpu0-2, GPU 0 slot 2.\n[Service]\n"
        "Environment=CUDA_VISIBLE_DEVICES=GPU-aaa\nEnvironment=OPENMM_CPU_THREADS=1\n"
        "Environment=SCIOPS_GPU_WORKER_CPUS=1\nCPUAffinity=1\n")
    for item in files:
        assert item["checksum"] == hashlib.sha1(item["content"].encode()).hexdigest()


def test_cpu_only_drop_ins_name_no_gpu():
    layout = gpu_worker_layout([], "node2", cpu_count=2, cpu_only=True, cpu_only_services=1)
    dropin = gpu_worker_files(layout, {}, "/s", "/t", "/c", "/u", "w", "Ansible managed")[1]
    assert dropin["content"].startswith("# Ansible managed (gpu_worker): node2-cpu-1, CPU-only.\n")
    assert "Environment=CUDA_VISIBLE_DEVICES=\n" in dropin["content"]
