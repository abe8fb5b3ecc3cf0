#!/usr/bin/env bash
# The gpu_worker role's GPU side on a real GPU machine, without changing its driver (the device
# tool's machine: no registry, PyTorch already installed). Run from the repository root:
#   tests/gpu/device-check.sh            (writes its report to $OUT/device-check.txt when OUT is set)
# 1. discovery: the real `nvidia-smi --query-gpu=index,uuid --format=csv,noheader`, parsed and laid
#    out by the role's own filters (plugins/filter/gpu_worker.py), 2 services per GPU;
# 2. the units' environment as the role renders it (CUDA_VISIBLE_DEVICES=<uuid>,
#    OPENMM_CPU_THREADS, CPUAffinity), for the first two services;
# 3. two processes started with that environment (taskset for the affinity): each must see exactly
#    one CUDA device, the one whose UUID it was given, and run a CUDA computation on it;
# 4. the driver sentinel (roles/gpu_worker/files/sciops-gpu-sentinel) against the real
#    /sys/module/nvidia/version and libnvidia-ml.so.<version>, with a settings file in a temporary
#    folder and a stand-in target name (it stops nothing on a match).
# Exit status 0 only when every step passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$(mktemp -d)}
report=$out/device-check.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
exec > >(tee "$report") 2>&1

echo "== device-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
nvidia-smi --query-gpu=index,uuid,name,driver_version --format=csv,noheader

echo "== 1-2. discovery and layout by the role's filters (2 services per GPU)"
nvidia-smi --query-gpu=index,uuid --format=csv,noheader > "$work/smi.csv"
"$python" - "$root" "$work/smi.csv" "$(hostname -s)" > "$work/layout.json" <<'PY'
import importlib.util, json, sys, types
root, smi, host = sys.argv[1:4]
try:
    import ansible.errors  # noqa: F401  (the role's filters raise AnsibleFilterError)
except ImportError:  # no Ansible on the GPU machine: the filters need only this one name
    sys.modules["ansible"] = types.ModuleType("ansible")
    errors = types.ModuleType("ansible.errors")
    errors.AnsibleFilterError = RuntimeError
    sys.modules["ansible.errors"] = errors
spec = importlib.util.spec_from_file_location("gpu_worker", root + "/plugins/filter/gpu_worker.py")
gpu_worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_worker)
import os
gpus = gpu_worker.gpu_worker_gpus(open(smi).read())
layout = gpu_worker.gpu_worker_layout(gpus, host, 2, os.cpu_count())
print(json.dumps(layout))
PY
"$python" -c 'import json,sys; [print(w["name"], w["uuid"], "cpus", w["cpus"]) for w in json.load(open(sys.argv[1]))]' "$work/layout.json"

echo "== 3. two processes with the units' environment"
cat > "$work/probe.py" <<'PY'
import os, sys, torch
want = os.environ["CUDA_VISIBLE_DEVICES"]
count = torch.cuda.device_count()
props = torch.cuda.get_device_properties(0)
seen = "GPU-" + str(props.uuid) if hasattr(props, "uuid") else "?"
a = torch.randn(2048, 2048, device="cuda")
b = torch.randn(2048, 2048, device="cuda")
c = (a @ b).sum().item()
check = (a.cpu() @ b.cpu()).sum().item()
ok = count == 1 and seen == want and abs(c - check) <= 1e-3 * max(1.0, abs(check))
print(f"{sys.argv[1]}: CUDA_VISIBLE_DEVICES={want} devices={count} device0={seen} ({props.name}) "
      f"affinity={sorted(os.sched_getaffinity(0))} OPENMM_CPU_THREADS={os.environ['OPENMM_CPU_THREADS']} "
      f"matmul sum gpu={c:.3f} cpu={check:.3f} -> {'OK' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
pids=()
for i in 0 1; do
    read -r name uuid cpus threads < <("$python" -c 'import json,sys; w=json.load(open(sys.argv[1]))[int(sys.argv[2])]; print(w["name"], w["uuid"], ",".join(map(str, w["cpus"])), w["threads"])' "$work/layout.json" "$i")
    echo "[Service] Environment=CUDA_VISIBLE_DEVICES=$uuid Environment=OPENMM_CPU_THREADS=$threads CPUAffinity=${cpus//,/ }"
    CUDA_VISIBLE_DEVICES=$uuid OPENMM_CPU_THREADS=$threads taskset -c "$cpus" "$python" "$work/probe.py" "$name" &
    pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done

echo "== 4. the driver sentinel against the real module and library"
cat > "$work/sentinel.conf" <<EOF
MODULE_VERSION_FILE='/sys/module/nvidia/version'
LIBRARY_GLOB='/usr/lib/*-linux-gnu/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* /usr/lib/libnvidia-ml.so.*'
REBOOT_MARKER='$work/reboot-required'
WORKERS_TARGET='sciops-device-check-none.target'
EOF
if SCIOPS_GPU_SENTINEL_CONF=$work/sentinel.conf sh "$root/roles/gpu_worker/files/sciops-gpu-sentinel" --verbose; then
    echo "sentinel: match"
else
    echo "sentinel: MISMATCH or not found (see above)"; status=1
fi
echo "== result: $([ "$status" = 0 ] && echo PASS || echo FAIL)"
exit "$status"
