"""Benchmark (not a timed test): steady load at the front door while switch_colour.yml runs.

Keep-alive clients (each keeps its connection, as browsers and API clients do) and clients that
open a new connection per request, at once, at https://<front door>/ with the service's Host
header; playbooks/switch_colour.yml switches to the idle colour in the middle. Reports failed
requests of each kind (target 0), the switch's wall time (target at most 5 s), p50/p99 latency
of each kind, and the latency of one sequential client (keep-alive and new connections), which
shows what the front door adds. Needs the local environment (`make up`), which runs the real
job-queue API v3; the idle colour is deployed first. The live colour is the front door's link.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from http_load import Load, latency  # noqa: E402  (the tests' own library, beside this file's tree)


def playbook(*args):
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/local", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", default="nmpi_queue")
    parser.add_argument("--host", default="nmpi.local.sciops.test")
    parser.add_argument("--address", default="172.30.40.21")
    parser.add_argument("--frontdoor", default="local-app1", help="the front door's container")
    parser.add_argument("--path", default="/statistics/queue-length", help="a route that reads the database")
    parser.add_argument("--clients", type=int, default=4, help="clients of each kind")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the switch")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after the switch")
    args = parser.parse_args()

    p50, _, failures = latency(args.address, args.host, path=args.path, requests=5)
    if failures:
        sys.exit(f"the front door does not answer for {args.host} at {args.address}: run `make up` first")
    live = subprocess.run(["docker", "exec", args.frontdoor, "readlink", f"/etc/sciops/frontdoor/{args.service}/live"],
                          capture_output=True, text=True, check=True).stdout.strip()
    target = "green" if live == "blue" else "blue"
    print(f"[bench] {args.service}: live {live}; deploying {target} (idle) first...", flush=True)
    playbook("playbooks/deploy_service.yml", "-e", f"service={args.service}", "-e", f"colour={target}")

    for keepalive in (True, False):
        p50, p99, failures = latency(args.address, args.host, path=args.path, requests=300, keepalive=keepalive)
        kind = "keep-alive" if keepalive else "new connection per request"
        print(f"[bench] one client, {kind}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {failures} failed")

    print(f"[bench] load: {args.clients} keep-alive and {args.clients} new-connection clients at {args.path} "
          f"(Host: {args.host}); switching in {args.before:.0f} s", flush=True)
    with Load(args.address, args.host, path=args.path, clients=args.clients, keepalive=True, period=0.05,
              warmup_s=args.before, cooldown_s=0) as kept, \
            Load(args.address, args.host, path=args.path, clients=args.clients, keepalive=False, period=0.05,
                 warmup_s=0, cooldown_s=args.after) as fresh:
        took = playbook("playbooks/switch_colour.yml", "-e", f"service={args.service}", "-e", f"colour={target}")
    print(f"[bench] switch_colour.yml wall time: {took:.1f} s (target <= 5 s), {live} -> {target}")
    print(f"[bench] keep-alive clients: {kept.summary()}")
    print(f"[bench] new-connection clients: {fresh.summary()}")
    failed = kept.failed() + fresh.failed()
    if failed:
        print(f"[bench] failures (target 0): {failed[:5]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
