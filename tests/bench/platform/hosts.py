#!/usr/bin/env python3
"""Inventory of the platform benchmark (tests/bench/platform.sh N): the local environment's
layout on nodes of its own, with SCIOPS_BENCH_APP_NODES app nodes (default 1, at most as many
as host_vars/ has addresses for).

  bench-ca1   acme_test_ca (Pebble)
  bench-db1   postgres
  bench-app1  frontdoor + nmpi_queue (the static sites go with the front door)
  bench-app2 ... bench-appN  nmpi_queue
  bench-hub1  jupyterhub (the public and the private hub, behind the front door on bench-app1)
  bench-forum1  forum (the stand-in forum, a test double; its backups at the S3 test endpoint,
              moto on bench-ca1, the group s3_test_endpoint)

SCIOPS_BENCH_CORE=1 leaves out the hub and the forum (with its S3 endpoint): the three-node
platform (CA, database, app nodes) that came before them, measured the same way.

Hosts and groups only (an Ansible inventory script: --list, --host); the variables are the
local environment's, through the links in group_vars/, with the addresses in host_vars/ and the
network in group_vars/all/zz_bench.yml."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def inventory():
    try:
        count = int(os.environ.get("SCIOPS_BENCH_APP_NODES", "1"))
    except ValueError:
        sys.exit("SCIOPS_BENCH_APP_NODES must be a number of app nodes")
    apps = [f"bench-app{i}" for i in range(1, count + 1)]
    known = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(HERE, "host_vars")) if n.startswith("bench-app"))
    missing = [a for a in apps if a not in known]
    if count < 1 or missing:
        sys.exit(f"SCIOPS_BENCH_APP_NODES={count}: give 1 to {len(known)} app nodes (host_vars/ has their addresses)")
    groups = {
        "acme_test_ca": {"hosts": ["bench-ca1"]},
        "s3_test_endpoint": {"hosts": ["bench-ca1"]},
        "postgres": {"hosts": ["bench-db1"]},
        "nmpi_queue": {"hosts": apps},
        "frontdoor": {"hosts": apps[:1]},
        "jupyterhub": {"hosts": ["bench-hub1"]},
        "forum": {"hosts": ["bench-forum1"]},
    }
    if os.environ.get("SCIOPS_BENCH_CORE", "0") == "1":
        for name in ("jupyterhub", "s3_test_endpoint", "forum"):
            groups[name] = {"hosts": []}
    return {"_meta": {"hostvars": {}}, "all": {"children": list(groups)}, **groups}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        print("{}")
    else:
        print(json.dumps(inventory(), indent=2))
