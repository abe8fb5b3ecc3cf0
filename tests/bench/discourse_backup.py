"""Benchmark (not a timed test): upload and restore drill of a large forum backup against S3 on
loopback. The stand-in forum (tests/discourse/standin_forum.py) makes a backup of --size-mb of
uploads (random bytes: incompressible) in a throwaway PostgreSQL cluster; the role's script
uploads it to moto[server] on 127.0.0.1 and drills it. Prints wall time, throughput and the peak
memory (max RSS) of each run: the uploader must stream (its memory stays near the multipart
parts in flight, not the file's size).
  python tests/bench/discourse_backup.py [--size-mb 1024]      (make bench-forum; root, Debian's postgresql)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "discourse_backup" / "files" / "sciops-discourse-backup.py"
STANDIN = ROOT / "tests" / "discourse" / "standin_forum.py"
PSQL = ["runuser", "-u", "postgres", "--", "psql"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(argv, env):
    """Run argv; its wall time and its peak RSS in MiB (the child's own, from wait4)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[1:]} failed: {err or out}")
    return seconds, usage.ru_maxrss / 1024, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--chunk-mb", type=int, default=16)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="sciops-bench-forum.", dir="/var/tmp")
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))[-1].parent
    pg_port, s3_port = free_port(), free_port()
    data = os.path.join(base, "pg")
    moto = None
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", data, "-A", "trust", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", data, "-w", "-l", f"{base}/pg.log",
                        "-o", f"-k {base} -c listen_addresses='' -p {pg_port}", "start"], check=True, capture_output=True)
        moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{s3_port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, PGHOST=base, PGPORT=str(pg_port), PGUSER="postgres", AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", NO_PROXY="127.0.0.1",
                   AWS_REQUEST_CHECKSUM_CALCULATION="when_required", AWS_RESPONSE_CHECKSUM_VALIDATION="when_required",
                   SCIOPS_STANDIN_STATE=f"{base}/standin", SCIOPS_STANDIN_BACKUPS=f"{base}/backups/default",
                   SCIOPS_STANDIN_UPLOADS=f"{base}/uploads", SCIOPS_STANDIN_PSQL=" ".join(PSQL))
        import boto3  # noqa: PLC0415
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(Bucket="bench-forum")
        uploads = max(1, args.size_mb // 64)
        standin = [sys.executable, str(STANDIN), "--db", "forum"]
        init = subprocess.run(standin + ["init", "--users", "2000", "--topics", "500", "--posts-per-topic", "20", "--uploads",
                                         str(uploads), "--upload-bytes", str(args.size_mb * 1024 * 1024 // uploads)],
                              env=env, check=False, capture_output=True, text=True)
        if init.returncode != 0:
            sys.exit("the stand-in forum could not be made: " + init.stderr)
        made_s, _rss, out = timed(standin + ["backup"], env)
        backup = json.loads(out.strip().splitlines()[-1])
        size = os.path.getsize(backup["path"])
        config = Path(base) / "config.json"
        config.write_text(json.dumps({
            "bucket": "bench-forum", "endpoint_url": endpoint, "path_style": True, "local_dir": f"{base}/backups/default",
            "min_age_seconds": 0, "multipart_chunk_mb": args.chunk_mb, "state_dir": f"{base}/state", "textfile_dir": "",
            "drill": {"psql_command": PSQL, "extensions": [], "work_dir": base}}))
        script = [sys.executable, str(SCRIPT), "--config", str(config)]
        up_s, up_rss, _ = timed(script + ["upload"], env)
        drill_s, drill_rss, out = timed(script + ["drill"], env)
        result = json.loads(out.strip().splitlines()[-1])
        mib = size / 1024 / 1024
        print(f"| backup | {backup['name']} | {mib:.0f} MiB | made in {made_s:.1f} s |")
        print("| step | wall time | throughput | peak memory (max RSS) |\n|---|---|---|---|")
        print(f"| upload (multipart, {args.chunk_mb} MiB parts, checksum check) | {up_s:.1f} s | {mib / up_s:.0f} MiB/s | {up_rss:.0f} MiB |")
        print(f"| restore drill ({result['rows']['posts']} posts) | {drill_s:.1f} s | {mib / drill_s:.0f} MiB/s | {drill_rss:.0f} MiB |")
        print(f"(this machine: {os.cpu_count()} cores; the bench process itself {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    finally:
        if moto:
            moto.terminate()
            moto.wait(timeout=10)
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
