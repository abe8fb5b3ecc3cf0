"""A tiny synchronous WebSocket client (RFC 6455) for the tests, standard library only.

It speaks to a server directly or through the front door (nginx) over TLS with a chosen
SNI and Host header, which is how the tests reach a service by its name on an address:

    ws = connect("172.30.43.20", 443, "/ws", "echo.test")
    ws.send_text("hello")
    assert ws.recv_text() == "hello"
    ws.close()

Certificate verification is off by default (the front door may serve a self-signed
placeholder); pass cafile= to verify the chain and the name against server_name instead.
No extensions (no permessage-deflate) and no subprotocols are negotiated.
"""
import base64
import hashlib
import os
import socket
import ssl
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPS = (OP_TEXT, OP_BINARY)
_CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)


class WebSocketError(Exception):
    """The server broke the protocol, or the connection cannot be used any more."""


class HandshakeError(WebSocketError):
    """The server did not switch protocols (no 101, or a wrong Sec-WebSocket-Accept)."""

    def __init__(self, message, status_line="", status=None, headers=None, body=b""):
        super().__init__(message)
        self.status_line = status_line
        self.status = status
        self.headers = headers or {}
        self.body = body


class ConnectionClosed(WebSocketError):
    """The server closed the connection (close frame, or the TCP connection ended)."""

    def __init__(self, code=None, reason=""):
        super().__init__("WebSocket closed by the server (code %s%s)" % (code, ", %s" % reason if reason else ""))
        self.code = code
        self.reason = reason


def _mask(data, key):
    """XOR data with the 4-byte masking key (fast for large payloads: one big-integer XOR)."""
    if not data:
        return data
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def accept_value(key):
    """The Sec-WebSocket-Accept a server must answer for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


class WebSocket:
    """An open client connection; made by connect()."""

    def __init__(self, sock, buffered=b"", max_size=64 * 1024 * 1024):
        self.sock = sock
        self._buf = bytearray(buffered)
        self.max_size = max_size
        self.closed = False
        self.close_code = None
        self.close_reason = ""
        self.pongs = []  # payloads of the pong frames received (answers to ping())

    # --- sending -----------------------------------------------------------------------
    def _send_frame(self, opcode, payload, fin=True):
        if self.closed:
            raise WebSocketError("the WebSocket connection is closed")
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += struct.pack("!B", 0x80 | n)
        elif n < 1 << 16:
            head += struct.pack("!BH", 0x80 | 126, n)
        else:
            head += struct.pack("!BQ", 0x80 | 127, n)
        key = os.urandom(4)  # a client masks every frame it sends
        self.sock.sendall(head + key + _mask(bytes(payload), key))

    def _send_message(self, opcode, payload, fragment_size):
        if not fragment_size or len(payload) <= fragment_size:
            self._send_frame(opcode, payload)
            return
        chunks = [payload[i:i + fragment_size] for i in range(0, len(payload), fragment_size)]
        for index, chunk in enumerate(chunks):
            self._send_frame(opcode if index == 0 else OP_CONT, chunk, fin=index == len(chunks) - 1)

    def send_text(self, text, fragment_size=None):
        """Send a text message (in frames of fragment_size bytes when given)."""
        self._send_message(OP_TEXT, text.encode("utf-8"), fragment_size)

    def send_binary(self, data, fragment_size=None):
        """Send a binary message (in frames of fragment_size bytes when given)."""
        self._send_message(OP_BINARY, bytes(data), fragment_size)

    def ping(self, payload=b""):
        """Send a ping; its pong is collected in self.pongs while receiving."""
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        self._send_frame(OP_PING, payload)

    # --- receiving ---------------------------------------------------------------------
    def _read(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout as exc:
                raise WebSocketError("no data from the server within the timeout") from exc
            if not chunk:
                self.closed = True
                raise ConnectionClosed(1006, "connection ended without a close frame")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _fail(self, message):
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", 1002))
        except (OSError, WebSocketError):
            pass
        self._shutdown()
        raise WebSocketError("protocol error from the server: %s" % message)

    def _read_frame(self):
        b0, b1 = self._read(2)
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        if rsv:
            self._fail("reserved bits set without a negotiated extension")
        if masked:
            self._fail("a server must not mask its frames")
        if opcode not in _DATA_OPS + _CONTROL_OPS + (OP_CONT,):
            self._fail("unknown opcode 0x%x" % opcode)
        if opcode in _CONTROL_OPS and (not fin or length > 125):
            self._fail("fragmented or oversized control frame")
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if length > self.max_size:
            self._fail("frame of %d bytes over max_size" % length)
        return fin, opcode, self._read(length)

    def _on_close(self, payload):
        if len(payload) >= 2:
            (self.close_code,) = struct.unpack("!H", payload[:2])
            self.close_reason = payload[2:].decode("utf-8", "replace")
        else:
            self.close_code = 1005
        try:
            self._send_frame(OP_CLOSE, payload[:2])  # answer the close with the same code
        except (OSError, WebSocketError):
            pass
        self._shutdown()
        raise ConnectionClosed(self.close_code, self.close_reason)

    def recv(self):
        """The next message: str for a text message, bytes for a binary one.

        Continuation frames are reassembled; pings are answered with pongs on the way; a close
        frame is answered and raises ConnectionClosed."""
        if self.closed:
            raise ConnectionClosed(self.close_code, self.close_reason)
        opcode, parts, size = None, [], 0
        while True:
            fin, op, payload = self._read_frame()
            if op == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                self._on_close(payload)
            if op == OP_CONT:
                if opcode is None:
                    self._fail("continuation frame without a message to continue")
            elif opcode is not None:
                self._fail("new data frame before the fragmented message ended")
            else:
                opcode = op
            parts.append(payload)
            size += len(payload)
            if size > self.max_size:
                self._fail("message over max_size")
            if fin:
                break
        data = b"".join(parts)
        if opcode == OP_BINARY:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail("text message that is not UTF-8")

    def recv_text(self):
        """The next message, which must be a text message."""
        message = self.recv()
        if not isinstance(message, str):
            raise WebSocketError("expected a text message, got a binary one of %d bytes" % len(message))
        return message

    def recv_bytes(self):
        """The next message, which must be a binary message."""
        message = self.recv()
        if not isinstance(message, bytes):
            raise WebSocketError("expected a binary message, got a text one of %d characters" % len(message))
        return message

    # --- closing -----------------------------------------------------------------------
    def _shutdown(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self, code=1000, reason=""):
        """Close handshake: send a close frame, wait (within the timeout) for the server's."""
        if self.closed:
            return
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])
            while True:
                fin, op, payload = self._read_frame()
                if op == OP_CLOSE:
                    if len(payload) >= 2:
                        (self.close_code,) = struct.unpack("!H", payload[:2])
                        self.close_reason = payload[2:].decode("utf-8", "replace")
                    break
        except (OSError, WebSocketError):
            pass
        finally:
            self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_head(sock, limit=65536):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise HandshakeError("handshake answer headers over %d bytes" % limit)
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise HandshakeError("connection ended during the handshake (got %r)" % data[:200])
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1) if ":" in line else (line, "")
        name = name.strip().lower()
        headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
    return lines[0], headers, rest


def _read_some_body(sock, headers, rest, limit=2048):
    """Best effort: some of a refused handshake's body, for the error message."""
    try:
        want = min(int(headers.get("content-length", limit)), limit)
    except ValueError:
        want = limit
    try:
        sock.settimeout(min(sock.gettimeout() or 2, 2))
        while len(rest) < want:
            chunk = sock.recv(want - len(rest))
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    return rest[:want]


def connect(host, port, path="/", server_name=None, tls=True, timeout=10, cafile=None, headers=None,
            max_size=64 * 1024 * 1024):
    """Open a WebSocket to host:port at path, with Host (and, over TLS, SNI) = server_name.

    server_name defaults to host. tls=False speaks plain ws://. cafile verifies the server's
    certificate (chain and name) instead of accepting anything. headers: extra request headers
    (e.g. {"Origin": ...}). Raises HandshakeError, with the status line, when the answer is not
    101 Switching Protocols with the right Sec-WebSocket-Accept."""
    server_name = server_name or host
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        if tls:
            if cafile:
                context = ssl.create_default_context(cafile=cafile)
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])  # a WebSocket upgrade is HTTP/1.1, not h2
            sock = context.wrap_socket(sock, server_hostname=server_name)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = {
            "Host": server_name,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
            "User-Agent": "sciops-ws-client",
        }
        request.update(headers or {})
        lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % item for item in request.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1"))
        status_line, answer, rest = _read_head(sock)
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        where = "%s:%s%s (Host %s)" % (host, port, path, server_name)
        if status != 101:
            body = _read_some_body(sock, answer, rest)
            text = body.decode("utf-8", "replace").strip()
            raise HandshakeError("WebSocket handshake with %s refused: %r%s" % (
                where, status_line, (", body: %s" % text[:300]) if text else ""),
                status_line, status, answer, body)
        if answer.get("upgrade", "").lower() != "websocket" or "upgrade" not in [
                token.strip().lower() for token in answer.get("connection", "").split(",")]:
            raise HandshakeError("WebSocket handshake with %s: 101 without Upgrade: websocket / Connection: "
                                 "Upgrade headers (%r)" % (where, answer), status_line, status, answer)
        if answer.get("sec-websocket-accept") != accept_value(key):
            raise HandshakeError("WebSocket handshake with %s: wrong Sec-WebSocket-Accept %r" % (
                where, answer.get("sec-websocket-accept")), status_line, status, answer)
        if answer.get("sec-websocket-extensions"):
            raise HandshakeError("WebSocket handshake with %s: server chose extensions that were not offered "
                                 "(%s)" % (where, answer["sec-websocket-extensions"]), status_line, status, answer)
        return WebSocket(sock, rest, max_size=max_size)
    except BaseException:
        sock.close()
        raise
