"""tests/lib/ws_client.py against the WebSocket echo test double (tests/fixtures/ws_echo_app)
served by uvicorn on 127.0.0.1, and against a hand-made server for the frames uvicorn never
sends (fragments, pings, a close from the server). Plain ws:// here: no nginx in unit tests.

The echo app needs its requirements (uvicorn, websockets: tests/fixtures/ws_echo_app/
requirements.txt) in this interpreter's environment; without them these tests fail."""
from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.util
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "tests" / "fixtures" / "ws_echo_app"
if str(ROOT / "tests" / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "lib"))

import ws_client  # noqa: E402  (needs the path above)

ENV = {"SCIOPS_SERVICE": "ws_echo", "SCIOPS_COLOUR": "green", "SCIOPS_RELEASE": "r-42"}


def missing_requirements():
    """The echo app's requirements that this interpreter cannot import."""
    return [name for name in ("uvicorn", "websockets") if importlib.util.find_spec(name) is None]


def requirements_message(missing):
    pins = (APP_DIR / "requirements.txt").read_text().split()
    pins = [line for line in pins if "==" in line]
    return ("the WebSocket echo app cannot run: package(s) %s not importable by %s; install %s "
            "(tests/fixtures/ws_echo_app/requirements.txt) into this environment"
            % (", ".join(missing), sys.executable, " ".join(pins)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """uvicorn serving ws_echo.main:app on 127.0.0.1:<free port>; yields the port."""
    missing = missing_requirements()
    if missing:
        pytest.fail(requirements_message(missing), pytrace=False)
    port = free_port()
    log = tmp_path_factory.mktemp("ws_echo") / "uvicorn.log"
    env = dict(os.environ, **ENV)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(APP_DIR), "--host", "127.0.0.1",
             "--port", str(port), "--ws", "websockets", "--lifespan", "on", "ws_echo.main:app"],
            cwd=APP_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail("uvicorn exited (rc %s):\n%s" % (proc.returncode, log.read_text()), pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("uvicorn not listening on %d after 30 s:\n%s" % (port, log.read_text()),
                                pytrace=False)
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # A clean lifespan shutdown is part of the contract of the app.
    assert "Application shutdown complete" in log.read_text(), log.read_text()


def http_get(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": "echo.test"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type"), resp.read()
    finally:
        conn.close()


def test_echo_app_requirements_importable():
    missing = missing_requirements()
    assert not missing, requirements_message(missing)


def test_http_root_describes_the_service(echo_server):
    status, ctype, body = http_get(echo_server, "/")
    assert status == 200
    assert ctype == "application/json"
    assert json.loads(body) == {"service": "ws_echo", "colour": "green", "version": "r-42", "status": "ok"}


def test_http_other_paths_and_methods(echo_server):
    assert http_get(echo_server, "/nope")[0] == 404
    assert http_get(echo_server, "/ws")[0] == 404  # /ws without an Upgrade is no page
    assert http_get(echo_server, "/", method="POST")[0] == 405


def test_echo_100_text_messages_one_of_200kB(echo_server):
    big = "".join(chr(0x41 + i % 26) for i in range(200 * 1024 - 3)) + "\u20ac"  # 200 kB, non-ASCII end
    messages = ["message %d \u00e9\u4e2d" % i for i in range(100)]
    messages[0] = ""          # empty message
    messages[57] = big        # 64-bit extended length, uvicorn's max message size is 16 MiB
    messages[58] = "x" * 126  # 16-bit extended length boundary
    messages[59] = "y" * 125  # 7-bit length boundary
    ws = ws_client.connect("127.0.0.1", echo_server, "/ws", "echo.test", tls=False)
    try:
        for index, message in enumerate(messages):
            ws.send_text(message, fragment_size=65536 if index == 57 else None)
            assert ws.recv_text() == message, "message %d" % index
        # Pipelined: all sent before the first answer is read.
        for message in messages[:20]:
            ws.send_text(message)
        assert [ws.recv_text() for dummy in range(20)] == messages[:20]
    finally:
        ws.close()
    assert ws.closed and ws.close_code == 1000


def test_echo_binary_and_ping(echo_server):
    with ws_client.connect("127.0.0.1", echo_server, "/ws", "echo.test", tls=False) as ws:
        data = bytes(range(256)) * 1000
        ws.send_binary(data)
        assert ws.recv_bytes() == data
        ws.ping(b"are you there")
        ws.send_text("after ping")
        assert ws.recv_text() == "after ping"
        assert ws.pongs == [b"are you there"]


def test_nothing_sent_on_connect(echo_server):
    ws = ws_client.connect("127.0.0.1", echo_server, "/ws", "echo.test", tls=False, timeout=1)
    try:
        with pytest.raises(ws_client.WebSocketError, match="timeout"):
            ws.recv_text()
    finally:
        ws.close()


@pytest.mark.parametrize("path", ["/", "/nope", "/ws/other"])
def test_non_websocket_path_is_a_clear_error(echo_server, path):
    with pytest.raises(ws_client.HandshakeError) as info:
        ws_client.connect("127.0.0.1", echo_server, path, "echo.test", tls=False)
    err = info.value
    assert err.status == 403  # uvicorn's answer to a handshake that the app closes unaccepted
    assert err.status_line.startswith("HTTP/1.1 403")
    assert "refused" in str(err) and err.status_line in str(err) and path in str(err)


def test_plain_http_server_is_a_clear_error():
    """A server that does not speak WebSocket at all: the status line is in the error."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer():
            conn = listener.accept()[0]
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nnot here\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(ws_client.HandshakeError, match=r"'HTTP/1.1 404 Not Found'.*not here") as info:
            ws_client.connect("127.0.0.1", listener.getsockname()[1], "/ws", "x.test", tls=False)
        thread.join(5)
    assert info.value.status == 404


# --- A hand-made server: frames that uvicorn does not send -------------------------------

def server_frame(opcode, payload, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += struct.pack("!BH", 126, n)
    else:
        head += struct.pack("!BQ", 127, n)
    return head + payload  # servers do not mask


def read_client_frame(conn, buf):
    def need(n):
        while len(buf) < n:
            chunk = conn.recv(65536)
            assert chunk, "client went away"
            buf.extend(chunk)
        data = bytes(buf[:n])
        del buf[:n]
        return data

    b0, b1 = need(2)
    assert b1 & 0x80, "client frames must be masked"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", need(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", need(8))
    key = need(4)
    payload = bytes(c ^ key[i % 4] for i, c in enumerate(need(n)))
    return bool(b0 & 0x80), b0 & 0x0F, payload


@pytest.fixture
def scripted_server():
    """A one-connection server (TLS with tls_context): does the handshake, then runs
    script(conn, buf) in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    result = {}

    def start(script, tls_context=None):
        def serve():
            conn = listener.accept()[0]
            if tls_context is not None:
                conn = tls_context.wrap_socket(conn, server_side=True)
                result["alpn"] = conn.selected_alpn_protocol()
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                head, rest = data.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
                result["request_line"], result["headers"] = lines[0], fields
                accept = base64.b64encode(hashlib.sha1((fields["sec-websocket-key"] + ws_client.GUID).encode())
                                          .digest()).decode()
                conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
                try:
                    result["script"] = script(conn, bytearray(rest))
                except Exception as exc:  # reported by the test
                    result["error"] = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return listener.getsockname()[1], thread

    yield start, result
    listener.close()


def test_fragments_pings_and_server_close(scripted_server):
    start, result = scripted_server

    def script(conn, buf):
        got = []
        # A text message in three fragments, a ping between them (control frames may interleave).
        conn.sendall(server_frame(ws_client.OP_TEXT, "h\u00e9l".encode()[:2], fin=False)
                     + server_frame(ws_client.OP_PING, b"p1")
                     + server_frame(ws_client.OP_CONT, "h\u00e9l".encode()[2:], fin=False)
                     + server_frame(ws_client.OP_CONT, b"lo", fin=True))
        got.append(read_client_frame(conn, buf))  # the pong
        big = os.urandom(70000)
        conn.sendall(server_frame(ws_client.OP_BINARY, big[:1000], fin=False)
                     + server_frame(ws_client.OP_CONT, big[1000:], fin=True))
        got.append(big)
        got.append(read_client_frame(conn, buf))  # the client's fragmented text message
        got.append(read_client_frame(conn, buf))
        conn.sendall(server_frame(ws_client.OP_CLOSE, struct.pack("!H", 1001) + b"going away"))
        got.append(read_client_frame(conn, buf))  # the close answer
        return got

    port, thread = start(script)
    ws = ws_client.connect("127.0.0.1", port, "/ws?x=1", "named.test", tls=False)
    assert ws.recv_text() == "h\u00e9llo"
    assert ws.recv_bytes()
    ws.send_text("abcdef", fragment_size=4)
    with pytest.raises(ws_client.ConnectionClosed) as info:
        ws.recv_text()
    assert (info.value.code, info.value.reason) == (1001, "going away")
    assert ws.closed
    thread.join(10)
    assert "error" not in result, result.get("error")
    pong, big, frag1, frag2, close = result["script"]
    assert result["request_line"] == "GET /ws?x=1 HTTP/1.1"
    assert result["headers"]["host"] == "named.test"
    assert pong == (True, ws_client.OP_PONG, b"p1")
    assert frag1 == (False, ws_client.OP_TEXT, b"abcd") and frag2 == (True, ws_client.OP_CONT, b"ef")
    assert close == (True, ws_client.OP_CLOSE, struct.pack("!H", 1001))


def test_masked_server_frame_is_a_protocol_error(scripted_server):
    start = scripted_server[0]

    def script(conn, buf):
        conn.sendall(bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"hi")

    port, thread = start(script)
    ws = ws_client.connect("127.0.0.1", port, "/", "named.test", tls=False)
    with pytest.raises(ws_client.WebSocketError, match="must not mask"):
        ws.recv_text()
    assert ws.closed
    thread.join(10)


def test_wrong_accept_is_refused():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer():
            conn = listener.accept()[0]
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(ws_client.HandshakeError, match="Sec-WebSocket-Accept"):
            ws_client.connect("127.0.0.1", listener.getsockname()[1], "/ws", "x.test", tls=False)
        thread.join(5)


# --- TLS: SNI and Host are the server name, not the address ---------------------------------

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A self-signed certificate for echo.test (made with the openssl command)."""
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=echo.test", "-addext", "subjectAltName=DNS:echo.test",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.fail("no openssl command to make a test certificate: `make setup` installs it")
    return cert, key


@pytest.mark.parametrize("verify", [False, True], ids=["unverified", "cafile"])
def test_tls_sni_and_host(scripted_server, self_signed, verify):
    start, result = scripted_server
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    seen = {}

    def sni(sslsock, name, ctx):
        seen["sni"] = name

    context.sni_callback = sni

    def script(conn, buf):
        conn.sendall(server_frame(ws_client.OP_TEXT, read_client_frame(conn, buf)[2]))  # echo one
        read_client_frame(conn, buf)  # close
        conn.sendall(server_frame(ws_client.OP_CLOSE, struct.pack("!H", 1000)))

    port, thread = start(script, tls_context=context)
    ws = ws_client.connect("127.0.0.1", port, "/ws", "echo.test", tls=True, cafile=str(cert) if verify else None)
    ws.send_text("over tls")
    assert ws.recv_text() == "over tls"
    ws.close()
    thread.join(10)
    assert "error" not in result, result.get("error")
    assert seen["sni"] == "echo.test"
    assert result["headers"]["host"] == "echo.test"
    assert result["alpn"] == "http/1.1"  # never h2: the upgrade is HTTP/1.1


def test_tls_cafile_checks_the_name(self_signed):
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            conn = listener.accept()[0]
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(ssl.SSLCertVerificationError):
            ws_client.connect("127.0.0.1", listener.getsockname()[1], "/ws", "other.test", cafile=str(cert))
        thread.join(5)
