#!/usr/bin/env python3
"""Inventory of the GPU worker benchmark (tests/bench/gpu_workers.sh N): SCIOPS_BENCH_GPU_NODES
nodes (default 1, at most as many as host_vars/ has addresses for) in the group gpu_workers,
each with 4 fake GPUs (the molecule scenario's test doubles: tests/gpu/), on the network
sciops-bench-gpu 172.30.51.0/24. Hosts and groups only (an Ansible inventory script: --list,
--host); the variables are in group_vars/ and host_vars/."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def inventory():
    try:
        count = int(os.environ.get("SCIOPS_BENCH_GPU_NODES", "1"))
    except ValueError:
        sys.exit("SCIOPS_BENCH_GPU_NODES must be a number of nodes")
    nodes = [f"bench-gpu{i}" for i in range(1, count + 1)]
    known = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(HERE, "host_vars")))
    missing = [n for n in nodes if n not in known]
    if count < 1 or missing:
        sys.exit(f"SCIOPS_BENCH_GPU_NODES={count}: give 1 to {len(known)} nodes (host_vars/ has their addresses)")
    return {"_meta": {"hostvars": {}}, "all": {"children": ["gpu_workers"]}, "gpu_workers": {"hosts": nodes}}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        print("{}")
    else:
        print(json.dumps(inventory(), indent=2))
