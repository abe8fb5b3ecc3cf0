#!/usr/bin/env python3
"""TEST DOUBLE of alchemiscale's compute API (AlchemiscaleComputeAPI), on loopback: the routes the
stand-in compute service (standin_alchemiscale.py) calls, shaped like upstream's, with no task to
hand out. It records, per compute service, what the worker reported (its name, CUDA_VISIBLE_DEVICES,
OPENMM_CPU_THREADS, CPU affinity, pid), its heartbeats, claims and deregistration, so the tests
can check what each worker saw. Stdlib only.

    fake_compute_api.py --port 8765 --identifier ID --key-file FILE

GET  /ping                                        {"api": "AlchemiscaleComputeAPI"}
POST /computeservice/{id}/register                body: the worker's report; 401 on a wrong identity/key
POST /computeservice/{id}/heartbeat
POST /computeservice/{id}/claim                   [] (no task)
POST /computeservice/{id}/deregister
GET  /records                                     every registration, oldest first
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RECORDS = {}


class Handler(BaseHTTPRequestHandler):
    identifier = ""
    key = ""

    def log_message(self, *args):  # pylint: disable=arguments-differ  # quiet, whatever the base class passes
        """Quiet: the journal would fill with heartbeats."""

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # pylint: disable=invalid-name  # the name http.server calls
        if self.path == "/ping":
            self.reply(200, {"api": "AlchemiscaleComputeAPI", "test_double": True})
        elif self.path == "/records":
            with LOCK:
                self.reply(200, sorted(RECORDS.values(), key=lambda record: record["registered_at"]))
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self):  # pylint: disable=invalid-name  # the name http.server calls
        parts = self.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.reply(422, {"detail": "body is not JSON"})
            return
        if len(parts) != 3 or parts[0] != "computeservice":
            self.reply(404, {"detail": "Not Found"})
            return
        if (self.headers.get("X-Identifier"), self.headers.get("X-Key")) != (self.identifier, self.key):
            self.reply(401, {"detail": "Incorrect identity or key"})
            return
        service_id, action = parts[1], parts[2]
        now = time.time()
        with LOCK:
            record = RECORDS.get(service_id)
            if action == "register":
                RECORDS[service_id] = dict(body, id=service_id, registered_at=now, last_heartbeat=now, heartbeats=0,
                                           claims=0, deregistered_at=None)
                self.reply(200, service_id)
            elif record is None:
                self.reply(404, {"detail": "compute service %s is not registered" % service_id})
            elif action == "heartbeat":
                record["last_heartbeat"] = now
                record["heartbeats"] += 1
                self.reply(200, service_id)
            elif action == "claim":
                record["claims"] += 1
                self.reply(200, [])
            elif action == "deregister":
                record["deregistered_at"] = now
                self.reply(200, service_id)
            else:
                self.reply(404, {"detail": "Not Found"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--identifier", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args()
    with open(args.key_file, encoding="utf-8") as handle:
        Handler.key = handle.read().strip()
    Handler.identifier = args.identifier
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
