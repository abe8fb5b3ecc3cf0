"""Benchmark (not a timed test): JupyterHub login-to-running-server latency, first cell, memory.

Temporary users of a tmp-login hub (by default the public hub of the molecule jupyterhub scenario,
`molecule converge -s jupyterhub`; --front/--name/--node/--deployment pick another), each as a
browser meets the hub through the front door (tests/jupyterhub/hub_client.py): the temporary
login, the spawn, until the user's JupyterLab page and server API answer. 10 users one after
another (each then starts a kernel and runs a cell over the kernel's WebSocket: time to a first
executed cell), then 20 at once (threads; each bounded by --limit). Reports p50/p95 of each, the
failures, and the memory (systemd's MemoryCurrent) of the hub's and the proxy's units before,
with the servers running and after; deletes the users it made (the hub's idle-culler token, which
has admin:users) and fails if any is left. Writes tests/output/bench/jupyterhub-spawn.{json,md}
and prints the table. Targets: p95 spawn <= 5 s; 20 concurrent users all served, 0 failures.
Load goes only to the given front door (the scenario's node by default), bounded in count and time.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, ROOT)
from tests.jupyterhub.hub_client import HubClient, culler_token_command, delete_users  # noqa: E402

OUT = os.path.join(ROOT, "tests", "output", "bench")
TARGET_P95_S = 5.0


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of the values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def node_command(node, command):
    return subprocess.run(["docker", "exec", node, "sh", "-c", command], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def memory(node, deployment):
    """MemoryCurrent (MiB) of the hub's and its proxy's units."""
    found = {}
    for unit in (f"jupyterhub-{deployment}", f"jupyterhub-{deployment}-proxy"):
        value = node_command(node, f"systemctl show -p MemoryCurrent --value {unit}")
        found[unit] = round(int(value) / 2**20, 1) if value.isdigit() else None
    return found


def hub_spawn_times(node, deployment, since, users):
    """The hub's own figure for each user's spawn ('User <name> took <s> seconds to start')."""
    log = node_command(node, f"journalctl -u jupyterhub-{deployment} --no-pager -o cat --since '{since}' "
                             "| grep ' seconds to start' || true")
    found = {}
    for line in log.splitlines():
        match = re.search(r"User (\S+) took ([0-9.]+) seconds to start", line)
        if match and match.group(1) in users:
            found[match.group(1)] = float(match.group(2))
    return found


def running_servers(node, deployment):
    return int(node_command(node, f"systemctl list-units --state=running --no-legend 'jupyter-{deployment}-*' | wc -l"))


def spawn(args, made, lock):
    """One temporary user from the login to a running server; (client, seconds)."""
    start = time.monotonic()
    client = HubClient(args.front, args.name, timeout=60, port=args.port)
    client.follow("/hub/tmplogin")
    client.user = client.whoami()
    if not client.user:
        raise AssertionError("the temporary login did not log in")
    with lock:
        made.append(client.user)
    client.start_server()  # already pending when the login started it (400), else it starts now
    wait_for_progress(client, start + args.limit)
    client.wait_for_server(limit=max(10, start + args.limit - time.monotonic()))
    return client, time.monotonic() - start


def wait_for_progress(client, deadline):
    """Follow the spawn's progress stream until it says ready, as the hub's spawn-pending page does
    in a browser (one long request; polling the pages instead loads the hub that does the spawning)."""
    path = f"/hub/api/users/{client.user}/server/progress"
    response = client.session.get(f"{client.origin}{path}", stream=True, verify=False, allow_redirects=False,
                                  timeout=(10, 60), headers={"Host": client.name, "Accept": "text/event-stream",
                                                             "X-XSRFToken": client.xsrf("/hub/")})
    try:
        if response.status_code != 200:
            raise AssertionError(f"progress: {response.status_code} {response.text[:200]}")
        for line in response.iter_lines(decode_unicode=True):
            if time.monotonic() > deadline:
                raise AssertionError("progress: not ready in time")
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("failed"):
                raise AssertionError(f"spawn failed: {event.get('message')}")
            if event.get("ready"):
                return
    finally:
        response.close()


def first_cell(client):
    """Seconds from asking for a kernel to the cell's result over the kernel's WebSocket."""
    start = time.monotonic()
    kernel = client.kernel(client.start_kernel())
    try:
        out = kernel.execute("print(6 * 7)", timeout=60)
    finally:
        kernel.close()
    if out["stdout"] != "42\n":
        raise AssertionError(f"unexpected cell result {out}")
    return time.monotonic() - start


def attempt(args, made, lock, with_cell=False):
    try:
        client, took = spawn(args, made, lock)
        cell = first_cell(client) if with_cell else None
        return {"ok": True, "user": client.user, "spawn_s": round(took, 2), "first_cell_s": cell and round(cell, 2)}
    except Exception as error:  # noqa: BLE001 (a failure is a result of the benchmark)
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:500], "trace": traceback.format_exc()[-1500:]}


def summary(results, hub_times):
    spawns = [r["spawn_s"] for r in results if r["ok"]]
    hub = [hub_times[r["user"]] for r in results if r["ok"] and r["user"] in hub_times]
    cells = [r["first_cell_s"] for r in results if r["ok"] and r.get("first_cell_s") is not None]
    return {"users": len(results), "served": len(spawns), "failures": len(results) - len(spawns),
            "spawn_p50_s": percentile(spawns, 50), "spawn_p95_s": percentile(spawns, 95),
            "spawn_max_s": max(spawns) if spawns else None,
            "hub_spawn_p50_s": percentile(hub, 50), "hub_spawn_p95_s": percentile(hub, 95),
            "first_cell_p50_s": percentile(cells, 50), "first_cell_p95_s": percentile(cells, 95),
            "errors": sorted({r["error"] for r in results if not r["ok"]})}


def fmt(value, unit=" s"):
    return "–" if value is None else f"{value:.2f}{unit}"


def table(report):
    s, c = report["sequential"], report["concurrent"]
    mem = report["memory_mib"]
    units = list(mem["before"])
    lines = [
        f"JupyterHub spawn benchmark: {report['hub']} via {report['front']} ({report['date']}, {report['machine']})",
        "",
        "| run | users | served | failures | login to server p50 | p95 | max | hub's spawn p50 | p95 | first cell p50 | p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in (("sequential", s), ("concurrent", c)):
        lines.append(f"| {label} | {row['users']} | {row['served']} | {row['failures']} | {fmt(row['spawn_p50_s'])} | "
                     f"{fmt(row['spawn_p95_s'])} | {fmt(row['spawn_max_s'])} | {fmt(row['hub_spawn_p50_s'])} | "
                     f"{fmt(row['hub_spawn_p95_s'])} | {fmt(row['first_cell_p50_s'])} | "
                     f"{fmt(row['first_cell_p95_s'])} |")
    lines += ["", "| memory (MemoryCurrent) | " + " | ".join(units) + " | user servers running |",
              "|---|" + "---:|" * (len(units) + 1)]
    for moment in ("before", "after_sequential", "after_concurrent", "after_cleanup"):
        lines.append(f"| {moment.replace('_', ' ')} | " + " | ".join(fmt(mem[moment][u], " MiB") for u in units)
                     + f" | {report['servers_running'][moment]} |")
    t = report["targets"]
    lines += ["", f"Targets: p95 spawn <= {TARGET_P95_S:.0f} s: sequential {t['sequential_p95']}, concurrent "
              f"{t['concurrent_p95']}; {c['users']} concurrent users all served with 0 failures: {t['concurrent_served']}. "
              f"Users made {report['users_made']}, deleted {report['users_deleted']}.", ""]
    for label, row in (("sequential", s), ("concurrent", c)):
        for error in row["errors"]:
            lines.append(f"- {label} failure: {error}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", default="172.30.47.10", help="the front door's address")
    parser.add_argument("--name", default="public.hub.test", help="the hub's public name (a tmp-login hub)")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--node", default="mol-jh-hub", help="the hub's container (docker exec: memory, token)")
    parser.add_argument("--deployment", default="public", help="the hub's deployment name (its units' names)")
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--limit", type=int, default=180, help="seconds one user may take to get a running server")
    parser.add_argument("--machine", default=f"{os.cpu_count()} cores", help="what ran it, for the report")
    args = parser.parse_args()
    if not 0 < args.concurrent <= 50 or not 0 < args.sequential <= 50:
        sys.exit("at most 50 users a run")

    probe = HubClient(args.front, args.name, timeout=10, port=args.port)
    try:
        health = probe.request("GET", "/hub/health").status_code
    except Exception as error:  # noqa: BLE001
        health = error
    if health != 200:
        sys.exit(f"{args.name} does not answer at {args.front} ({health}): converge the scenario first "
                 "(molecule converge -s jupyterhub)")

    made, lock = [], threading.Lock()
    report = {"hub": args.name, "front": args.front, "machine": args.machine,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "memory_mib": {}, "servers_running": {}}

    def snapshot(moment):
        report["memory_mib"][moment] = memory(args.node, args.deployment)
        report["servers_running"][moment] = running_servers(args.node, args.deployment)

    snapshot("before")
    since = node_command(args.node, "date '+%Y-%m-%d %H:%M:%S'")
    deleted_ok = False
    try:
        print(f"[bench] {args.sequential} temporary users one after another at {args.name}...", flush=True)
        sequential = [attempt(args, made, lock, with_cell=True) for _ in range(args.sequential)]
        report["sequential"] = sequential
        snapshot("after_sequential")

        print(f"[bench] {args.concurrent} temporary users at once...", flush=True)
        barrier = threading.Barrier(args.concurrent)

        def together(_):
            barrier.wait(timeout=30)
            return attempt(args, made, lock)
        with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
            concurrent = list(pool.map(together, range(args.concurrent)))
        report["concurrent"] = concurrent
        snapshot("after_concurrent")
    finally:
        print(f"[bench] deleting the {len(made)} users made...", flush=True)
        token = node_command(args.node, culler_token_command(args.deployment))
        left = delete_users(args.front, args.name, token, made, limit=300)
        report["users_made"], report["users_deleted"] = len(made), len(made) - len(left)
        deleted_ok = not left
        if left:
            print(f"[bench] NOT deleted: {left}", file=sys.stderr)
    snapshot("after_cleanup")

    hub_times = hub_spawn_times(args.node, args.deployment, since, set(made))
    report["results"] = {"sequential": report.pop("sequential"), "concurrent": report.pop("concurrent")}
    report["sequential"] = s = summary(report["results"]["sequential"], hub_times)
    report["concurrent"] = c = summary(report["results"]["concurrent"], hub_times)

    def met(value):
        return "not measured" if value is None else ("met" if value <= TARGET_P95_S else "NOT met")
    report["targets"] = {"sequential_p95": met(s["spawn_p95_s"]), "concurrent_p95": met(c["spawn_p95_s"]),
                         "concurrent_served": "met" if c["failures"] == 0 else "NOT met"}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "jupyterhub-spawn.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    text = table(report)
    with open(os.path.join(OUT, "jupyterhub-spawn.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text, end="")
    print(f"[bench] failures: {s['failures'] + c['failures']}; written {OUT}/jupyterhub-spawn.json and .md")
    return 0 if deleted_ok and s["failures"] + c["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
