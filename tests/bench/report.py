"""Benchmark tables from the runs' JSON (written by tests/bench/callback_plugins/sciops_bench.py).

  report.py stamp RUN.json --label L --wall S --expect noop|any
      add the process's wall time to a run's figures; with --expect noop, fail (exit 1) and name
      the changed tasks when the run changed anything (a no-op that is not one)
  report.py postgres DIR         the postgres bench (DIR/cold.json, noop1.json, noop2.json)
  report.py platform DIR         the whole platform (DIR/provision-cold.json, cold.json,
                                 provision-noop.json, noop1.json, noop2.json)
  report.py combined PG_DIR PLATFORM_DIR
  report.py scale N=DIR ...      the platform on N app nodes: the cost of each extra node
  report.py gpu N=DIR ...        the GPU workers on N nodes (tests/bench/gpu_workers.sh): the cost of
                                 each extra node, and the rolling upgrade's restart windows
  report.py windows NODE         (stdin: a node's `journalctl -o short-unix` of its workers) one JSON
                                 line: its restart window and the most of its workers down at once

Tables are Markdown on stdout. A no-op column is the faster of the two no-op runs (all rows
from that run, so they add up to its total). Figures only: nothing here judges a time.
"""
import argparse
import json
import os
import sys

# Roles of a platform run, in the order site.yml runs them; others follow in the order they ran.
ROLE_ORDER = [
    "sciops.platform.common", "sciops.platform.acme_test_ca", "sciops.platform.postgres",
    "sciops.platform.jupyterhub", "sciops.platform.webservice", "sciops.platform.nmpi_queue", "sciops.platform.frontdoor",
    "sciops.platform.letsencrypt", "sciops.platform.discourse_backup",
]
PLAYBOOK = "(playbook)"
HEADER = ("| benchmark | role | cold s | no-op s | tasks cold / no-op | host results cold / no-op "
          "| changed cold / no-op |\n|---|---|---:|---:|---:|---:|---:|")


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def short(role):
    return role.split(".")[-1] if role.startswith("sciops.platform.") else role


def noop_run(directory, prefix="noop"):
    """The faster of the no-op runs (by the process's wall time)."""
    runs = [load(os.path.join(directory, f"{prefix}{i}.json")) for i in (1, 2)
            if os.path.exists(os.path.join(directory, f"{prefix}{i}.json"))]
    if not runs:
        sys.exit(f"no no-op run in {directory}")
    return min(runs, key=lambda r: r["process_wall_s"])


def fmt_s(value):
    return "" if value is None else f"{value:.1f}"


def pair(a, b):
    if a is None and b is None:
        return ""
    return f"{'' if a is None else a} / {'' if b is None else b}"


def role_figures(run, role):
    r = run["roles"].get(role) if run else None
    return r or {"wall_s": 0.0, "tasks": 0, "results": 0, "changed": 0}


def row(bench, name, cold, noop):
    """One table row from two dicts with wall_s, tasks, results, changed (either may be None)."""
    c, n = cold or {}, noop or {}
    return (f"| {bench} | {name} | {fmt_s(c.get('wall_s'))} | {fmt_s(n.get('wall_s'))} "
            f"| {pair(c.get('tasks'), n.get('tasks'))} | {pair(c.get('results'), n.get('results'))} "
            f"| {pair(c.get('changed'), n.get('changed'))} |")


def whole(run):
    """A run's totals: the process's wall time, tasks, host results and the recap's changed."""
    return {"wall_s": run["process_wall_s"], "tasks": run["tasks"],
            "results": sum(r["results"] for r in run["roles"].values()),
            "changed": run["recap"]["totals"]["changed"]}


def outside(run):
    """Wall time outside the tasks: start-up, inventory, playbook parsing, recap."""
    return {"wall_s": max(0.0, run["process_wall_s"] - sum(r["wall_s"] for r in run["roles"].values()))}


def ordered_roles(*runs):
    seen = [r for r in ROLE_ORDER if any(r in run["roles"] for run in runs)]
    for run in runs:
        seen += [r for r in run["roles"] if r not in seen and r != PLAYBOOK]
    return seen + [PLAYBOOK]


def postgres_rows(directory):
    cold, noop = load(os.path.join(directory, "cold.json")), noop_run(directory)
    bench = "postgres (bench-db1: 1 database, 2 users)"
    role = "sciops.platform.postgres"
    return [row(bench, "postgres role", role_figures(cold, role), role_figures(noop, role)),
            row(bench, "**postgres.yml, whole run**", whole(cold), whole(noop))]


def platform_rows(directory):
    cold, noop = load(os.path.join(directory, "cold.json")), noop_run(directory)
    pcold = load(os.path.join(directory, "provision-cold.json"))
    pnoop = load(os.path.join(directory, "provision-noop.json"))
    apps = sorted(h for h in cold["recap"]["hosts"] if h.startswith("bench-app"))
    bench = f"platform ({len(apps)} app node{'s' if len(apps) != 1 else ''})"
    rows = [row(bench, short(role), role_figures(cold, role), role_figures(noop, role)) for role in ordered_roles(cold, noop)]
    rows.append(row(bench, "(outside tasks: start-up, parsing, recap)", outside(cold), outside(noop)))
    rows.append(row(bench, "**local.yml, whole platform**", whole(cold), whole(noop)))
    prov = "sciops.platform.provision"
    rows.append(row(bench, "provision", role_figures(pcold, prov), role_figures(pnoop, prov)))
    rows.append(row(bench, "**provision.yml, whole run**", whole(pcold), whole(pnoop)))
    both = [{k: whole(a)[k] + whole(b)[k] for k in ("wall_s", "tasks", "results", "changed")} for a, b in ((pcold, cold), (pnoop, noop))]
    rows.append(row(bench, "**provision.yml + local.yml**", both[0], both[1]))
    return rows


def per_node(value, base, nodes):
    """The cost of each node beyond the first, as % of the one-node figure."""
    if nodes == 1 or not base:
        return "-"
    return f"{(value - base) / (nodes - 1) / base * 100:+.1f} %"


def scale(pairs):
    figures = []
    for nodes, directory in sorted(pairs):
        cold, noop = load(os.path.join(directory, "cold.json")), noop_run(directory)
        ws = "sciops.platform.webservice"
        figures.append((nodes, whole(cold)["wall_s"], whole(noop)["wall_s"],
                        role_figures(cold, ws)["wall_s"], role_figures(noop, ws)["wall_s"],
                        role_figures(cold, ws)["results"], role_figures(noop, ws)["results"]))
    if figures[0][0] != 1:
        sys.exit("scale needs the 1-node run (1=DIR) as its base")
    base = figures[0]
    lines = ["| app nodes | local.yml cold s | per extra node | local.yml no-op s | per extra node "
             "| webservice cold s | per extra node | webservice no-op s | per extra node | webservice host results cold / no-op |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for nodes, cold, noop, wcold, wnoop, rcold, rnoop in figures:
        lines.append(f"| {nodes} | {cold:.1f} | {per_node(cold, base[1], nodes)} | {noop:.1f} | {per_node(noop, base[2], nodes)} "
                     f"| {wcold:.1f} | {per_node(wcold, base[3], nodes)} | {wnoop:.1f} | {per_node(wnoop, base[4], nodes)} "
                     f"| {rcold} / {rnoop} |")
    return lines


def node_window(node, lines):
    """A node's restart window from systemd's journal lines (short-unix): first "Stopping" to last
    "Started", and the most of its workers down (stopping, not yet started) at the same moment."""
    down, most, first, last = set(), 0, None, None
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) < 4 or "sciops-gpu-worker@" not in parts[3]:
            continue
        stamp, text = float(parts[0]), parts[3]
        unit = text.split("sciops-gpu-worker@", 1)[1].split(".service", 1)[0]
        if text.startswith("Stopping "):
            first = stamp if first is None else first
            down.add(unit)
            most = max(most, len(down))
        elif text.startswith("Started "):
            last = stamp
            down.discard(unit)
    return {"node": node, "first_stop": first, "last_start": last, "most_down": most, "still_down": sorted(down)}


def gpu_windows(directory):
    """The rolling upgrade's restart windows, one per node (rolling-windows.jsonl): the longest, the
    most nodes restarting at once, and the most workers of one node down at once."""
    path = os.path.join(directory, "rolling-windows.jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        windows = [json.loads(line) for line in handle if line.strip()]
    spans = [(w["first_stop"], w["last_start"]) for w in windows if w["first_stop"] and w["last_start"]]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return {"nodes": len(windows), "measured": len(spans), "longest_s": max((end - start for start, end in spans), default=0.0),
            "most_at_once": most, "most_down": max((w["most_down"] for w in windows), default=0),
            "still_down": sum(len(w["still_down"]) for w in windows)}


def gpu(pairs):
    figures = []
    for nodes, directory in sorted(pairs):
        cold, noop = load(os.path.join(directory, "cold.json")), noop_run(directory)
        rolling = os.path.join(directory, "rolling.json")
        figures.append((nodes, whole(cold), whole(noop), load(rolling) if os.path.exists(rolling) else None,
                        gpu_windows(directory)))
    base = figures[0] if figures[0][0] == 1 else None
    lines = ["| nodes (4 fake GPUs, 8 services each) | gpu_workers.yml cold s | per extra node | no-op s | per extra node "
             "| host results cold / no-op | rolling upgrade, batches of 2 | longest restart window of a node | nodes restarting at once "
             "| most workers of a node down at once |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for nodes, cold, noop, rolling, windows in figures:
        extra_cold = per_node(cold["wall_s"], base[1]["wall_s"], nodes) if base else "-"
        extra_noop = per_node(noop["wall_s"], base[2]["wall_s"], nodes) if base else "-"
        roll = f"{rolling['process_wall_s']:.1f} s" if rolling else "-"
        win = f"{windows['longest_s']:.1f} s" if windows and windows["measured"] else "-"
        most = f"{windows['most_at_once']} of {windows['nodes']}" if windows and windows["measured"] else "-"
        down = (f"{windows['most_down']} of 8" + (f" ({windows['still_down']} not back)" if windows["still_down"] else "")
                if windows and windows["measured"] else "-")
        lines.append(f"| {nodes} | {cold['wall_s']:.1f} | {extra_cold} | {noop['wall_s']:.1f} | {extra_noop} "
                     f"| {cold['results']} / {noop['results']} | {roll} | {win} | {most} | {down} |")
    return lines


def stamp(args):
    run = load(args.run)
    run["label"] = args.label
    run["process_wall_s"] = round(args.wall, 3)
    with open(args.run, "w", encoding="utf-8") as handle:
        json.dump(run, handle, indent=2)
        handle.write("\n")
    totals = run["recap"]["totals"]
    print(f"[bench] {args.label:<15} wall {args.wall:7.1f} s   tasks {run['tasks']:4d}   "
          f"ok={totals['ok']} changed={totals['changed']} failed={totals['failures']} "
          f"unreachable={totals['unreachable']}", file=sys.stderr)
    if totals["failures"] or totals["unreachable"]:
        sys.exit(f"[bench] FAIL: {args.label}: {totals['failures']} failed, {totals['unreachable']} unreachable")
    if args.expect == "noop" and totals["changed"]:
        changed = [t for r in run["roles"].values() for t in r["changed_tasks"]]
        sys.exit(f"[bench] FAIL: {args.label} is a no-op run but changed {totals['changed']}:\n  " + "\n  ".join(changed))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stamp")
    p.add_argument("run")
    p.add_argument("--label", required=True)
    p.add_argument("--wall", type=float, required=True)
    p.add_argument("--expect", choices=("noop", "any"), default="any")
    sub.add_parser("postgres").add_argument("dir")
    sub.add_parser("platform").add_argument("dir")
    p = sub.add_parser("combined")
    p.add_argument("postgres_dir")
    p.add_argument("platform_dir")
    sub.add_parser("scale").add_argument("runs", nargs="+", metavar="N=DIR")
    sub.add_parser("gpu").add_argument("runs", nargs="+", metavar="N=DIR")
    sub.add_parser("windows").add_argument("node")
    args = parser.parse_args()
    if args.cmd == "stamp":
        stamp(args)
        return
    if args.cmd == "windows":
        print(json.dumps(node_window(args.node, sys.stdin.read().splitlines())))
        return
    if args.cmd in ("scale", "gpu"):
        pairs = []
        for item in args.runs:
            nodes, _, directory = item.partition("=")
            pairs.append((int(nodes), directory))
        lines = scale(pairs) if args.cmd == "scale" else gpu(pairs)
    else:
        rows = {"postgres": lambda: postgres_rows(args.dir),
                "platform": lambda: platform_rows(args.dir),
                "combined": lambda: postgres_rows(args.postgres_dir) + platform_rows(args.platform_dir)}[args.cmd]()
        lines = [HEADER] + rows
    print("\n".join(lines))


if __name__ == "__main__":
    main()
