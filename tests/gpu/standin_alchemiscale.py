#!/usr/bin/env python3
"""STAND-IN (test double) for the alchemiscale compute service, whose real package cannot be
installed here (conda-forge and its image registry are unreachable). It implements the
command-line contract the gpu_worker role runs:

    alchemiscale compute synchronous -c FILE [-n NAME]

FILE is the settings file (upstream's layout: init: ComputeServiceSettings' fields, start:
max_tasks and max_time; the role writes it as JSON, which is YAML). Like upstream it refuses a
missing required field or a base directory whose parent does not exist, ignores unknown keys
silently, registers with the compute API (api_url, identifier and key), heartbeats every
heartbeat_interval, claims every sleep_interval (the tests' API has no task), and on SIGTERM,
SIGINT or SIGHUP deregisters and exits 0. On registration it reports what it sees
(CUDA_VISIBLE_DEVICES, OPENMM_CPU_THREADS, its CPU affinity, pid, user) so the tests can check
the unit's layout. Talks to the tests' fake_compute_api.py. Stdlib only."""
import argparse
import json
import os
import pwd
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

REQUIRED = ("api_url", "identifier", "key", "name", "shared_basedir", "scratch_basedir")


def log(message):
    print(message, flush=True)


class Service:
    def __init__(self, init, start):
        self.settings = init
        self.start_settings = start
        self.name = init["name"]
        self.id = "%s-%s" % (self.name, uuid.uuid4())
        self.stopping = threading.Event()

    def call(self, action, body=None, retries=None):
        retries = int(self.settings.get("client_max_retries", 0)) if retries is None else retries
        base = float(self.settings.get("client_retry_base_seconds", 2.0))
        url = "%s/computeservice/%s/%s" % (self.settings["api_url"].rstrip("/"), self.id, action)
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST", headers={
                "Content-Type": "application/json", "X-Identifier": self.settings["identifier"],
                "X-Key": self.settings["key"]})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.loads(response.read() or b"null")
            except (urllib.error.URLError, OSError) as exc:
                if attempt == retries:
                    raise
                log("%s failed (%s); retrying" % (action, exc))
                time.sleep(min(base * 2 ** attempt, float(self.settings.get("client_retry_max_seconds", 60))))
        return None

    def report(self):
        return {
            "name": self.name,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "openmm_cpu_threads": os.environ.get("OPENMM_CPU_THREADS"),
            "cpus": sorted(os.sched_getaffinity(0)),
            "pid": os.getpid(),
            "user": pwd.getpwuid(os.getuid()).pw_name,
            "cwd": os.getcwd(),
            "scopes": self.settings.get("scopes"),
        }

    def run(self):
        self.call("register", self.report())
        log("Registered compute service %s (CUDA_VISIBLE_DEVICES=%s)" % (self.id, os.environ.get("CUDA_VISIBLE_DEVICES")))
        heartbeat = float(self.settings.get("heartbeat_interval", 300))
        sleep = float(self.settings.get("sleep_interval", 30))
        max_time = self.start_settings.get("max_time")
        started = time.monotonic()
        next_beat = started + heartbeat
        next_claim = started
        while not self.stopping.is_set():
            now = time.monotonic()
            if max_time is not None and now - started >= float(max_time):
                log("max_time reached")
                break
            if now >= next_claim:
                try:
                    self.call("claim", {"count": self.settings.get("claim_limit", 1)})
                except (urllib.error.URLError, OSError) as exc:
                    log("Claim failed: %s" % exc)
                next_claim = now + sleep
            if now >= next_beat:
                try:
                    self.call("heartbeat")
                    log("Updated heartbeat")
                except (urllib.error.URLError, OSError) as exc:
                    log("Heartbeat failed: %s" % exc)
                next_beat = now + heartbeat
            self.stopping.wait(min(0.5, sleep, heartbeat))
        try:
            self.call("deregister", retries=0)
            log("Deregistered compute service %s" % self.id)
        except (urllib.error.URLError, OSError) as exc:
            log("Deregistration failed: %s" % exc)


def synchronous(args):
    with open(args.config_file, encoding="utf-8") as handle:
        params = json.load(handle)
    init = dict(params.get("init", {}))
    start = dict(params.get("start", {}))
    if args.name:
        init["name"] = args.name
    missing = [field for field in REQUIRED if field not in init]
    if missing:
        log("1 validation error for ComputeServiceSettings: missing %s" % ", ".join(missing))
        return 1
    for field in ("shared_basedir", "scratch_basedir"):
        parent = os.path.dirname(os.path.abspath(init[field]))
        if not os.path.isdir(parent):
            log("%s's parent %s does not exist" % (field, parent))
            return 1
    service = Service(init, start)

    def stop(signum, _frame):
        log("Received %s: deregistering" % signal.Signals(signum).name)
        service.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        service.run()
    except (urllib.error.URLError, OSError) as exc:
        log("Compute API %s unreachable: %s" % (init["api_url"], exc))
        return 1
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="alchemiscale", description="STAND-IN for alchemiscale (test double)")
    commands = parser.add_subparsers(dest="command", required=True)
    compute = commands.add_parser("compute").add_subparsers(dest="subcommand", required=True)
    sync = compute.add_parser("synchronous", help="Start the synchronous compute service.")
    sync.add_argument("-c", "--config-file", required=True)
    sync.add_argument("-n", "--name", default=None)
    args = parser.parse_args(argv)
    return synchronous(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
