"""A real S3 endpoint on loopback (moto[server] from requirements-dev.txt), started for the tests
and stopped after, and the role's script loaded as a module."""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
SCRIPT = ROOT / "roles" / "discourse_backup" / "files" / "sciops-discourse-backup.py"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _attempt in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("moto_server exited: " + log.read_text()) from None
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server did not answer in 10 s: " + log.read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(monkeypatch, moto_server):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_PROXY": "127.0.0.1",
                       "no_proxy": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SCIOPS_DISCOURSE_BACKUP_NOW", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(key, raising=False)
    return moto_server


@pytest.fixture(scope="session")
def script():
    spec = importlib.util.spec_from_file_location("sciops_discourse_backup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PG_BIN = Path("/usr/lib/postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster (Debian's server binaries, which set-up installs), run as the
    postgres user on a Unix socket only; psql reaches it through PGHOST/PGPORT."""
    versions = sorted(PG_BIN.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    assert versions, "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin): apt-get install postgresql"
    bin_dir = versions[-1].parent
    base = tempfile.mkdtemp(prefix="sciops-drill-pg.", dir="/tmp")
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    data, port = os.path.join(base, "data"), _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(as_postgres + [str(bin_dir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run(as_postgres + [str(bin_dir / "pg_ctl"), "-D", data, "-w", "-l", os.path.join(base, "log"), "-o",
                                      f"-k {base} -c listen_addresses='' -p {port} -c fsync=off", "start"],
                       check=True, capture_output=True)
        yield {"PGHOST": base, "PGPORT": str(port), "PGUSER": "postgres", "bin_dir": str(bin_dir)}
    finally:
        subprocess.run(as_postgres + [str(bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"], check=False,
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def make_ca_and_cert(directory, address):
    """A private CA and a server certificate it signed for address (openssl, as a site's MinIO has)."""
    d = str(directory)

    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=sciops test S3 CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={address}",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    Path(f"{d}/ext.cnf").write_text(f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/server.pem")
    return f"{d}/ca.pem", f"{d}/server.pem", f"{d}/server.key"


@pytest.fixture(scope="session")
def moto_tls(tmp_path_factory):
    """moto over HTTPS with a certificate from a private CA: (endpoint, CA bundle)."""
    directory = tmp_path_factory.mktemp("moto-tls")
    ca, cert, key = make_ca_and_cert(directory, "127.0.0.1")
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port),
                             "--ssl-cert", cert, "--ssl-key", key], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    try:
        import ssl  # noqa: PLC0415
        context = ssl.create_default_context(cafile=ca)
        for _attempt in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1, context=context).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto_server over TLS did not answer in 10 s")
        yield url, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)
