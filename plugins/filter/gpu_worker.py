"""Filters of the gpu_worker role: nvidia-smi's GPU list parsed, the layout of the compute
services on a node (N per GPU, named <host>-gpu<k>-<slot>, pinned to the GPU by UUID, the node's
cores shared out), each service's settings file (alchemiscale's init/start sections, unknown keys
refused: alchemiscale ignores them silently) and Docker's daemon.json merged (other keys kept)."""
from __future__ import annotations

import difflib
import hashlib
import json
import re

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_json

# nvidia-smi --query-gpu=index,uuid --format=csv,noheader: "0, GPU-<uuid>" a line.
_GPU_LINE = re.compile(r"^\s*(?P<index>\d+)\s*,\s*(?P<uuid>(?:GPU|MIG)-[0-9A-Za-z-]+)\s*$")
# The fields of alchemiscale's settings file that go under start: (SynchronousComputeService.start's
# arguments); every other field is ComputeServiceSettings' and goes under init:.
START_FIELDS = ("max_tasks", "max_time")


def gpu_worker_gpus(stdout):
    """The GPUs nvidia-smi listed, as [{index, uuid}] sorted by index. A line that is not
    "<index>, <uuid>" is an error naming the line (nvidia-smi printing an error, not a list)."""
    gpus = []
    for line in (stdout or "").splitlines():
        if not line.strip():
            continue
        match = _GPU_LINE.match(line)
        if not match:
            raise AnsibleFilterError(
                "nvidia-smi --query-gpu=index,uuid --format=csv,noheader printed %r, not '<index>, <uuid>'" % line.strip())
        gpus.append({"index": int(match["index"]), "uuid": match["uuid"]})
    indexes = [gpu["index"] for gpu in gpus]
    if len(set(indexes)) != len(indexes):
        raise AnsibleFilterError("nvidia-smi listed a GPU index twice: %s" % indexes)
    return sorted(gpus, key=lambda gpu: gpu["index"])


def _cpus(position, count, cpu_count, threads):
    """The cores of the position-th of count services: a contiguous share of the node's cores,
    wrapping around when there are more services than cores."""
    if threads > 0:
        share = threads
    else:
        share = max(1, cpu_count // max(1, count))
    first = (position * share) % cpu_count
    return sorted({(first + offset) % cpu_count for offset in range(min(share, cpu_count))})


def gpu_worker_layout(gpus, host, services_per_gpu=1, cpu_count=1, threads=0, cpu_only=False, cpu_only_services=1):
    """The compute services of a node, one dict each: name (<host>-gpu<k>-<slot>, or
    <host>-cpu-<slot> for CPU-only workers), gpu (index or None), uuid (CUDA_VISIBLE_DEVICES: the
    GPU's UUID, "" for CPU-only), slot (1-based), cpus (CPUAffinity) and threads (OPENMM_CPU_THREADS).
    threads 0 shares the node's cores out evenly (at least one core each)."""
    services_per_gpu = int(services_per_gpu)
    cpu_count = int(cpu_count)
    threads = int(threads)
    if services_per_gpu < 1:
        raise AnsibleFilterError("gpu_worker_services_per_gpu must be at least 1; got %d" % services_per_gpu)
    if cpu_count < 1:
        raise AnsibleFilterError("the node reports %d CPU cores" % cpu_count)
    if cpu_only:
        slots = [(None, "", slot) for slot in range(1, int(cpu_only_services) + 1)]
    else:
        slots = [(gpu["index"], gpu["uuid"], slot) for gpu in gpus for slot in range(1, services_per_gpu + 1)]
    workers = []
    for position, (index, uuid, slot) in enumerate(slots):
        cpus = _cpus(position, len(slots), cpu_count, threads)
        name = "%s-cpu-%d" % (host, slot) if index is None else "%s-gpu%d-%d" % (host, index, slot)
        workers.append({"name": name, "gpu": index, "uuid": uuid, "slot": slot, "cpus": cpus,
                        "threads": threads if threads > 0 else len(cpus)})
    return workers


def gpu_worker_unknown_settings(settings, known, role_fields=()):
    """One message per key of settings that alchemiscale does not know (it would ignore it
    silently), naming the key and the closest known one; and one per key the role sets itself
    (role_fields: api_url, identifier, key, name and the base directories)."""
    problems = []
    for key in sorted(settings or {}):
        if key in role_fields:
            problems.append(
                "gpu_worker_settings: '%s' is set by the role (gpu_worker_%s, or per service), not in gpu_worker_settings."
                % (key, key if key in ("api_url", "identifier", "key", "shared_basedir", "scratch_basedir") else "<name>"))
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = "; did you mean %s?" % close[0] if close else ""
            problems.append(
                "gpu_worker_settings: unknown key '%s' (alchemiscale ignores unknown settings silently, so the role "
                "refuses them%s)" % (key, hint))
    return problems


def gpu_worker_settings_file(settings, start_fields=START_FIELDS):
    """The settings file of a compute service: {init: ComputeServiceSettings' fields, start:
    max_tasks and max_time}, as `alchemiscale compute synchronous -c FILE` reads it. Fields whose
    value is None are left out (alchemiscale's defaults apply)."""
    init = {}
    start = {}
    for key in sorted(settings or {}):
        value = settings[key]
        if value is None:
            continue
        (start if key in start_fields else init)[key] = value
    return {"init": init, "start": start}


def gpu_worker_files(layout, settings, shared_basedir, scratch_basedir, config_dir, unit_dir, user, header):
    """Each compute service's two files, with their content and its SHA-1 (so one command on the
    node can tell which differ, and only those are written): the settings file (JSON, which is
    YAML, as alchemiscale reads it; 0600, owned by the service's account: it holds the key) and the
    systemd drop-in that pins the service to its GPU and cores. settings: the settings every
    service shares (gpu_worker_settings with api_url, identifier and key); each service adds its
    name and its own shared and scratch folders."""
    files = []
    for worker in layout:
        name = worker["name"]
        own = dict(settings or {}, name=name, shared_basedir="%s/%s" % (shared_basedir, name),
                   scratch_basedir="%s/%s" % (scratch_basedir, name))
        # The bytes of the to_nice_json(indent=2) filter (Ansible's encoder: vaulted values too).
        content = to_nice_json(gpu_worker_settings_file(own), indent=2) + "\n"
        files.append({"name": name, "kind": "settings", "path": "%s/%s.yaml" % (config_dir, name), "content": content,
                      "owner": user, "group": user, "mode": "0600"})
        where = ("GPU %s slot %s" % (worker["gpu"], worker["slot"])) if worker["gpu"] is not None else "CPU-only"
        cpus = [str(cpu) for cpu in worker["cpus"]]
        content = ("# %s (gpu_worker): %s, %s.\n[Service]\nEnvironment=CUDA_VISIBLE_DEVICES=%s\n"
                   "Environment=OPENMM_CPU_THREADS=%s\nEnvironment=SCIOPS_GPU_WORKER_CPUS=%s\nCPUAffinity=%s\n") % (
            header, name, where, worker["uuid"], worker["threads"], ",".join(cpus), " ".join(cpus))
        files.append({"name": name, "kind": "dropin", "content": content,
                      "path": "%s/sciops-gpu-worker@%s.service.d/10-layout.conf" % (unit_dir, name),
                      "owner": "root", "group": "root", "mode": "0644"})
    for item in files:
        item["checksum"] = hashlib.sha1(item["content"].encode("utf-8")).hexdigest()
    return files


def gpu_worker_daemon_json(existing, wanted):
    """Docker's daemon.json with wanted merged in, recursively: every key the file had that wanted
    does not name is kept as it was. existing is the file's text ("" when there is none)."""
    text = (existing or "").strip()
    try:
        current = json.loads(text) if text else {}
    except ValueError as exc:
        raise AnsibleFilterError("daemon.json is not valid JSON (%s): fix or remove it; the role never overwrites it" % exc)
    if not isinstance(current, dict):
        raise AnsibleFilterError("daemon.json holds a %s, not a JSON object" % type(current).__name__)
    return _merge(current, wanted or {})


def _merge(base, extra):
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def gpu_worker_not_running(layout, show_stdout, unit_format="sciops-gpu-worker@%s.service"):
    """The services of layout whose unit `systemctl show --property=Id,ActiveState,UnitFileState`
    (show_stdout: blocks separated by blank lines) does not report both active and enabled."""
    states = {}
    for block in (show_stdout or "").split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            states[props["Id"]] = props
    wanted = []
    for worker in layout or []:
        props = states.get(unit_format % worker["name"], {})
        if props.get("ActiveState") != "active" or props.get("UnitFileState") != "enabled":
            wanted.append(worker)
    return wanted


def gpu_worker_status_lines(rows, host):
    """One line per compute service of a node: name, GPU, state, restarts, last heartbeat."""
    if not rows:
        return ["%s: no compute service" % host]
    lines = []
    for row in rows:
        gpu = "CPU-only" if row.get("gpu") is None else "GPU %s %s" % (row["gpu"], row.get("uuid", ""))
        result = row.get("result") or "success"
        state = row.get("state", "?") + ("" if result == "success" else " (%s)" % result)
        lines.append("%s  %s  %s  restarts %s  last heartbeat %s" % (
            row["name"], gpu, state, row.get("restarts", "?"), row.get("last_heartbeat", "none")))
    return lines


class FilterModule:
    def filters(self):
        return {
            "gpu_worker_gpus": gpu_worker_gpus,
            "gpu_worker_layout": gpu_worker_layout,
            "gpu_worker_unknown_settings": gpu_worker_unknown_settings,
            "gpu_worker_settings_file": gpu_worker_settings_file,
            "gpu_worker_files": gpu_worker_files,
            "gpu_worker_daemon_json": gpu_worker_daemon_json,
            "gpu_worker_status_lines": gpu_worker_status_lines,
            "gpu_worker_not_running": gpu_worker_not_running,
        }
