#!/usr/bin/env python3
"""TEST DOUBLE of nvidia-smi (no GPU on the test machines): answers the queries the gpu_worker role
and its tests make, from a JSON file instead of a driver. Stdlib only.

    fake_nvidia_smi.py [--fake-gpus=FILE] --query-gpu=index,uuid[,name,driver_version] --format=csv,noheader
    fake_nvidia_smi.py [--fake-gpus=FILE] --version

FILE (default /etc/sciops-test/gpu/gpus.json): {"driver_version": "535.183.01",
"module_version_file": "/etc/sciops-test/gpu/module-version", "gpus": [{"uuid": "GPU-...", "name": "..."}]}.
Like the real one: no GPU prints "No devices were found" (exit 6); a kernel module version (the
module_version_file, standing in for /sys/module/nvidia/version) other than the library's prints
"Failed to initialize NVML: Driver/library version mismatch" (exit 18)."""
import json
import sys

DEFAULT = "/etc/sciops-test/gpu/gpus.json"


def main(argv):
    path = DEFAULT
    args = []
    for arg in argv:
        if arg.startswith("--fake-gpus="):
            path = arg.split("=", 1)[1]
        else:
            args.append(arg)
    with open(path, encoding="utf-8") as handle:
        state = json.load(handle)
    library = state.get("driver_version", "535.183.01")
    module_file = state.get("module_version_file")
    if module_file:
        try:
            with open(module_file, encoding="utf-8") as handle:
                module = handle.read().strip()
        except OSError:
            module = ""
        if not module:
            print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                  "Make sure that the latest NVIDIA driver is installed and running.")
            return 9
        if module != library:
            print("Failed to initialize NVML: Driver/library version mismatch")
            print("NVML library version: %s" % library)
            return 18
    if "--version" in args:
        print("NVIDIA-SMI version  : %s (test double)" % library)
        print("DRIVER version      : %s" % library)
        return 0
    query = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--query-gpu=")), None)
    if query is None:
        print("fake nvidia-smi (test double): only --query-gpu=... --format=csv,noheader and --version", file=sys.stderr)
        return 2
    gpus = state.get("gpus", [])
    if not gpus:
        print("No devices were found")
        return 6
    fields = query.split(",")
    for index, gpu in enumerate(gpus):
        values = {"index": str(index), "uuid": gpu["uuid"], "name": gpu.get("name", "Fake GPU (test double)"),
                  "driver_version": library, "pci.bus_id": "00000000:%02X:00.0" % (index + 1)}
        try:
            print(", ".join(values[field] for field in fields))
        except KeyError as exc:
            print('Field "%s" is not a valid field to query.' % exc.args[0])
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
