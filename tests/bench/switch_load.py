"""Benchmark (not a timed test): steady load at the front door while switch_colour.yml runs.

Drives about RATE requests a second at https://<front door>/ with the service's Host header,
runs playbooks/switch_colour.yml to the idle colour in the middle, and reports failed requests
(target 0), the switch's wall time (target at most 5 s) and p99 latency before and during the
switch. Needs the local environment (`make up`), which runs the real job-queue API v3; the idle
colour is deployed first. The live colour is read where the front door records it.
"""
import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TLS = ssl.create_default_context()
TLS.check_hostname, TLS.verify_mode = False, ssl.CERT_NONE


def request(url, host):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=5, context=TLS) as resp:
            json.loads(resp.read())
            return started, time.monotonic() - started, resp.status, None
    except urllib.error.HTTPError as err:
        return started, time.monotonic() - started, err.code, None
    except Exception as exc:  # refused, reset, timeout: a failed request
        return started, time.monotonic() - started, type(exc).__name__, None


def playbook(*args):
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/local", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return time.monotonic() - started


def p99(samples):
    return statistics.quantiles(samples, n=100)[98] * 1000 if len(samples) >= 2 else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", default="nmpi_queue")
    parser.add_argument("--host", default="nmpi.local.sciops.test")
    parser.add_argument("--address", default="172.30.40.21")
    parser.add_argument("--frontdoor", default="local-app1", help="the front door's container")
    parser.add_argument("--path", default="/statistics/queue-length", help="a route that reads the database")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--before", type=float, default=8.0, help="seconds of load before the switch")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of load after the switch")
    args = parser.parse_args()
    url = f"https://{args.address}{args.path}"

    if request(url, args.host)[2] != 200:
        sys.exit(f"the front door does not answer for {args.host} at {args.address}: run `make up` first")
    live = subprocess.run(["docker", "exec", args.frontdoor, "cat", f"/etc/sciops/frontdoor/{args.service}/live"],
                          capture_output=True, text=True, check=True).stdout.strip()
    target = "green" if live == "blue" else "blue"
    print(f"[bench] {args.service}: live {live}; deploying {target} (idle) first...", flush=True)
    playbook("playbooks/deploy_service.yml", "-e", f"service={args.service}", "-e", f"colour={target}")

    results, stop, lock = [], threading.Event(), threading.Lock()
    workers = 4
    interval = workers / args.rate

    def load():
        while not stop.is_set():
            result = request(url, args.host)
            with lock:
                results.append(result)
            time.sleep(max(0.0, interval - result[1]))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    print(f"[bench] load: about {args.rate:.0f} requests/s at {url} (Host: {args.host}); switching in {args.before:.0f} s", flush=True)
    time.sleep(args.before)
    switch_started = time.monotonic()
    took = playbook("playbooks/switch_colour.yml", "-e", f"service={args.service}", "-e", f"colour={target}")
    switch_ended = time.monotonic()
    time.sleep(args.after)
    stop.set()
    for thread in threads:
        thread.join()

    before = [r[1] for r in results if r[0] < switch_started]
    during = [r[1] for r in results if switch_started <= r[0] <= switch_ended + 1.0]
    failed = [r for r in results if r[2] != 200]
    rate = len(results) / (results[-1][0] - results[0][0]) if len(results) > 1 else 0
    print(f"[bench] requests: {len(results)} at {rate:.1f}/s, failed: {len(failed)} (target 0)")
    print(f"[bench] switch_colour.yml wall time: {took:.1f} s (target <= 5 s), {live} -> {target}")
    print(f"[bench] p99 latency: before {p99(before):.1f} ms ({len(before)} requests), "
          f"during the switch {p99(during):.1f} ms ({len(during)} requests)")
    if failed:
        print(f"[bench] failures: {failed[:5]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
