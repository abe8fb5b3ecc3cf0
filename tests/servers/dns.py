"""A minimal authoritative DNS server: the GoDaddy test server's DNS face.

It answers for the zones of a GoDaddyServer from its live record store, so a record written
through the API is what a resolver (dig, the Let's Encrypt hook, Pebble's -dnsserver) sees at
once. UDP and TCP on the same port; the record types of the GoDaddy API (RECORD_TYPES: A, AAAA,
CNAME, MX, NS, SRV, TXT, and a synthesised SOA at the apex); ANY returns every record of the name.

- a name in a zone with records of the asked type: NOERROR with them (authoritative);
- a name that exists without that type (or an empty non-terminal): NOERROR, no answers, SOA;
- a CNAME answers any other type (followed inside the served zones);
- a GoDaddy wildcard ("*", "*.x") answers names below its parent that do not exist;
- an unknown name in a zone: NXDOMAIN with the SOA; a name outside the zones: REFUSED;
- a message that cannot be parsed: FORMERR (or no answer when not even the header is there);
  an opcode other than QUERY: NOTIMP. UDP answers beyond 512 bytes (or the EDNS size) are
  truncated with TC set, so the client retries over TCP.

GoDaddy names are relative to the zone ("@", "www", "_acme-challenge.x"); so are the hostnames
in CNAME/MX/NS/SRV data only when they are "@" (the zone itself); other data is absolute.
"""
from __future__ import annotations

import ipaddress
import socketserver
import struct
import threading

from tests.servers.godaddy import RECORD_TYPES

WIRE_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
TYPES = dict({t: WIRE_TYPES[t] for t in RECORD_TYPES}, OPT=41)
TYPE_NAMES = {v: k for k, v in TYPES.items()}
ANY = 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
EDNS_SIZE = 1232


class FormatError(Exception):
    pass


# --- wire format -------------------------------------------------------------------------
def read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """The name at offset (compression pointers followed) and the offset after it."""
    labels = []
    end = None
    jumps = 0
    total = 0
    while True:
        if offset >= len(msg):
            raise FormatError("name runs past the end of the message")
        length = msg[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(msg):
                raise FormatError("truncated compression pointer")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 64:
                raise FormatError("compression loop")
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            continue
        if length & 0xC0:
            raise FormatError("unsupported label type")
        offset += 1
        if length == 0:
            break
        label = msg[offset:offset + length]
        if len(label) != length:
            raise FormatError("label runs past the end of the message")
        total += length + 1
        if total > 255:
            raise FormatError("name longer than 255 octets")
        labels.append(label.decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def encode_name(name: str) -> bytes:
    name = name.rstrip(".")
    out = b""
    if name:
        for label in name.split("."):
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            if not raw or len(raw) > 63:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def character_strings(text: str) -> bytes:
    raw = text.encode("utf-8")
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    return b"".join(bytes([len(c)]) + c for c in chunks)


class Query:
    def __init__(self, msg: bytes):
        if len(msg) < 12:
            raise FormatError("shorter than a header")
        self.id, self.flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
        self.opcode = (self.flags >> 11) & 0xF
        self.rd = bool(self.flags & 0x0100)
        self.is_response = bool(self.flags & 0x8000)
        self.name, self.qtype, self.qclass = None, None, None
        self.question = b""
        self.edns = None  # the client's UDP payload size when the query has an OPT record
        if qd != 1:
            raise FormatError("%d questions" % qd)
        name, offset = read_name(msg, 12)
        if offset + 4 > len(msg):
            raise FormatError("truncated question")
        self.name = name
        self.qtype, self.qclass = struct.unpack("!HH", msg[offset:offset + 4])
        self.question = msg[12:offset + 4]
        offset += 4
        for dummy in range(an + ns + ar):
            offset = read_name(msg, offset)[1]
            if offset + 10 > len(msg):
                raise FormatError("truncated resource record")
            rtype, rclass, dummy, rdlen = struct.unpack("!HHIH", msg[offset:offset + 10])
            offset += 10 + rdlen
            if offset > len(msg):
                raise FormatError("truncated rdata")
            if rtype == TYPES["OPT"]:
                self.edns = max(512, rclass)


# --- the server --------------------------------------------------------------------------
class DnsServer:
    """Serve the zones of ``api`` (a GoDaddyServer) on host:port, UDP and TCP."""

    def __init__(self, api, host="127.0.0.1", port=0, echo=None):
        self.api = api
        self.host, self.port = host, port
        self.echo = echo  # callable(line): one line per query
        self.udp = self.tcp = None
        self.queries = []  # (transport, qname, type name, rcode name)
        self.frozen = None  # a snapshot served instead of the live store (tests: slow propagation)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self):
        server = self

        class UdpHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply = server.answer(data, "udp", self.client_address[0])
                if reply:
                    sock.sendto(reply, self.client_address)

        class TcpHandler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self):
                while True:
                    try:
                        head = self.rfile.read(2)
                    except OSError:  # idle client (timeout) or reset
                        return
                    if len(head) < 2:
                        return
                    data = self.rfile.read(struct.unpack("!H", head)[0])
                    reply = server.answer(data, "tcp", self.client_address[0])
                    if not reply:
                        return
                    self.wfile.write(struct.pack("!H", len(reply)) + reply)
                    self.wfile.flush()

        class Udp(socketserver.ThreadingUDPServer):
            daemon_threads = True

        class Tcp(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        for attempt in range(20):  # port 0: find a port free for both UDP and TCP
            self.udp = Udp((self.host, self.port), UdpHandler)
            try:
                self.tcp = Tcp((self.host, self.udp.server_address[1]), TcpHandler)
                break
            except OSError:
                self.udp.server_close()
                if self.port or attempt == 19:
                    raise
        for srv in (self.udp, self.tcp):
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        for srv in (self.udp, self.tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.udp.server_address[:2]
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host), port

    # --- data ----------------------------------------------------------------------------
    def _live(self) -> dict:
        with self.api.lock:
            return {zone.lower(): [dict(r) for r in records] for zone, records in self.api.zones.items()}

    def _zones(self) -> dict:
        frozen = self.frozen
        return frozen if frozen is not None else self._live()

    def freeze(self):
        """Keep answering from the records as they are now, as a lagging secondary would."""
        self.frozen = self._live()

    def thaw(self):
        self.frozen = None

    @staticmethod
    def _target(data: str, zone: str) -> str:
        data = (data or "").rstrip(".")
        return zone if data in ("", "@") else data

    def _soa(self, zone, records):
        ns = [r for r in records if r["type"] == "NS" and r["name"] == "@"]
        mname = self._target(ns[0]["data"], zone) if ns else "ns1." + zone
        serial = len(self.api.log) + 1  # grows with every API call
        rdata = encode_name(mname) + encode_name("hostmaster." + zone) + struct.pack("!IIIII", serial, 3600, 600, 604800, 600)
        return (zone, TYPES["SOA"], 600, rdata)

    def _rdata(self, record, zone) -> bytes | None:
        rtype, data = record["type"], "%s" % record.get("data", "")
        try:
            if rtype == "A":
                return ipaddress.IPv4Address(data).packed
            if rtype == "AAAA":
                return ipaddress.IPv6Address(data).packed
            if rtype in ("CNAME", "NS"):
                return encode_name(self._target(data, zone))
            if rtype == "TXT":
                return character_strings(data)
            if rtype == "MX":
                return struct.pack("!H", int(record.get("priority") or 0)) + encode_name(self._target(data, zone))
            if rtype == "SRV":
                return struct.pack("!HHH", int(record.get("priority") or 0), int(record.get("weight") or 0),
                                   int(record.get("port") or 0)) + encode_name(self._target(data, zone))
        except ValueError:
            return None
        return None

    def resolve(self, qname: str, qtype: int):
        """(rcode, answers, authority); records are (owner, type, ttl, rdata), owner None: the question's name."""
        zones = self._zones()
        name = qname.lower().rstrip(".")
        zone = max((z for z in zones if name == z or name.endswith("." + z)), key=len, default=None)
        if zone is None:
            return REFUSED, [], []
        records = zones[zone]
        soa = self._soa(zone, records)
        answers = []
        seen = set()
        while True:
            rel = "@" if name == zone else name[:-len(zone) - 1]
            here = [r for r in records if r["name"].lower() == rel]
            if not here and rel != "@" and not any(r["name"].lower().endswith("." + rel) for r in records):
                here = self._wildcard(records, rel)
                if not here:  # after a CNAME, the rcode is the target's (RFC 6604)
                    return NXDOMAIN, answers, [soa]
            owner = None if not answers else name
            if qtype == ANY:
                matching = [r for r in here if r["type"] in TYPES]
            else:
                matching = [r for r in here if TYPES.get(r["type"]) == qtype]
            for r in matching:
                rdata = self._rdata(r, zone)
                if rdata is not None:
                    answers.append((owner, TYPES[r["type"]], int(r.get("ttl") or 600), rdata))
            if rel == "@" and qtype in (TYPES["SOA"], ANY):
                answers.append((owner,) + soa[1:])
            cname = [r for r in here if r["type"] == "CNAME"]
            if matching or not cname or qtype in (TYPES["CNAME"], ANY):
                return NOERROR, answers, ([] if answers else [soa])
            rdata = self._rdata(cname[0], zone)
            answers.append((owner, TYPES["CNAME"], int(cname[0].get("ttl") or 600), rdata))
            target = self._target(cname[0]["data"], zone).lower()
            in_zone = max((z for z in zones if target == z or target.endswith("." + z)), key=len, default=None)
            if in_zone is None or target in seen or len(seen) > 8:
                return NOERROR, answers, []
            seen.add(target)
            name, zone = target, in_zone
            records = zones[zone]
            soa = self._soa(zone, records)

    @staticmethod
    def _wildcard(records, rel):
        labels = rel.split(".")
        names = {r["name"].lower() for r in records}
        for i in range(1, len(labels) + 1):
            parent = ".".join(labels[i:])
            exists = parent == "" or parent in names or any(n.endswith("." + parent) for n in names)
            if exists:  # the closest encloser: only its wildcard applies
                star = "*." + parent if parent else "*"
                return [r for r in records if r["name"].lower() == star]
        return []

    # --- messages ------------------------------------------------------------------------
    def answer(self, msg: bytes, transport="udp", client="") -> bytes | None:
        try:
            query = Query(msg)
        except FormatError:
            if len(msg) < 12:
                return None
            qid, flags = struct.unpack("!HH", msg[:4])
            if flags & 0x8000:
                return None
            return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | FORMERR, 0, 0, 0, 0)
        if query.is_response:
            return None
        answers, authority = [], []
        if query.opcode != 0:
            rcode = NOTIMP
        elif query.qclass not in (CLASS_IN, ANY):
            rcode = REFUSED
        else:
            rcode, answers, authority = self.resolve(query.name, query.qtype)
        self.queries.append((transport, query.name, TYPE_NAMES.get(query.qtype, str(query.qtype)), RCODES[rcode]))
        if self.echo is not None:
            self.echo("%s dns/%s %s %s %s %d" % (client, transport, TYPE_NAMES.get(query.qtype, query.qtype),
                                                 query.name or ".", RCODES[rcode], len(answers)))
        flags = 0x8000 | (query.opcode << 11) | (0x0100 if query.rd else 0) | rcode
        if rcode != REFUSED and rcode != NOTIMP:
            flags |= 0x0400  # authoritative
        opt = b""
        if query.edns is not None:
            opt = b"\0" + struct.pack("!HHIH", TYPES["OPT"], EDNS_SIZE, 0, 0)
        body = b"".join(self._rr(q, qtype, ttl, rdata) for q, qtype, ttl, rdata in answers + authority)
        reply = struct.pack("!HHHHHH", query.id, flags, 1, len(answers), len(authority), 1 if opt else 0)
        reply += query.question + body + opt
        limit = 65535 if transport == "tcp" else min(query.edns or 512, EDNS_SIZE if query.edns else 512)
        if len(reply) > limit:
            reply = struct.pack("!HHHHHH", query.id, flags | 0x0200, 1, 0, 0, 1 if opt else 0) + query.question + opt
        return reply

    @staticmethod
    def _rr(owner, rtype, ttl, rdata) -> bytes:
        head = b"\xc0\x0c" if owner is None else encode_name(owner)  # None: a pointer to the question's name
        return head + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


# --- a small client (tests without dig) ----------------------------------------------------
def query(host: str, port: int, name: str, rtype: str = "A", timeout: float = 2.0, tcp: bool = False):
    """Ask host:port; returns (rcode name, [(type name, text)...], flags)."""
    import random
    import socket

    qid = random.randint(0, 0xFFFF)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", TYPES[rtype], CLASS_IN)
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(msg)) + msg)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = sock.recv(65535)
                if not chunk:
                    break
                data += chunk
            reply = data[2:]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(msg, (host, port))
            reply = sock.recvfrom(65535)[0]
    rid, flags, dummy, an = struct.unpack("!HHHH", reply[:8])
    if rid != qid:
        raise FormatError("reply id does not match")
    offset = read_name(reply, 12)[1] + 4
    out = []
    for dummy in range(an):
        offset = read_name(reply, offset)[1]
        rtype_, rdlen = struct.unpack("!H", reply[offset:offset + 2])[0], struct.unpack("!H", reply[offset + 8:offset + 10])[0]
        offset += 10
        rdata = reply[offset:offset + rdlen]
        kind = TYPE_NAMES.get(rtype_, str(rtype_))
        if kind == "TXT":
            parts, i = [], 0
            while i < len(rdata):
                parts.append(rdata[i + 1:i + 1 + rdata[i]].decode())
                i += 1 + rdata[i]
            text = "".join(parts)
        elif kind == "A" or kind == "AAAA":
            text = str(ipaddress.ip_address(rdata))
        elif kind in ("CNAME", "NS"):
            text = read_name(reply, offset)[0]
        else:
            text = rdata.hex()
        out.append((kind, text))
        offset += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), out, flags
