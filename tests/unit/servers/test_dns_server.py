"""The GoDaddy test server's DNS face (tests/servers/dns.py), asked with dig (make setup installs it; a
missing dig fails these tests) and, where a test needs a plain query without EDNS, with a stdlib client."""
from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field

import pytest

from ansible_collections.sciops.platform.plugins.module_utils.godaddy import GoDaddyClient
from tests.servers import dns as dnsmod

DIG = shutil.which("dig")


@pytest.fixture(autouse=True)
def _dig_installed():
    if DIG is None:
        pytest.fail("dig is missing: `make setup` installs it (bind9-dnsutils); these tests need it")


@dataclass
class Answer:
    status: str
    flags: set
    answer: list = field(default_factory=list)      # (type, data)
    authority: list | None = None                   # (type, data); None from the stdlib client


def _txt(data):
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', data))


def ask(server, name, rtype="A", tcp=False, use_dig=True):
    host, port = server.address
    if not use_dig:
        rcode, answers, flags = dnsmod.query(host, port, name, rtype, tcp=tcp)
        names = {0x0400: "aa", 0x0200: "tc", 0x8000: "qr"}
        return Answer(rcode, {v for k, v in names.items() if flags & k}, answers)
    cmd = [DIG, "@" + host, "-p", str(port), "+noall", "+comments", "+answer", "+authority", "+time=2", "+tries=1",
           "+tcp" if tcp else "+notcp", name, rtype]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False).stdout
    result = Answer(re.search(r"status: (\w+)", out).group(1), set(re.search(r";; flags: ([^;]*);", out).group(1).split()),
                    [], [])
    section = None
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = result.answer
        elif line.startswith(";; AUTHORITY SECTION"):
            section = result.authority
        elif line.startswith(";") or not line.strip():
            continue
        elif section is not None:
            rtype_, data = line.split(None, 4)[3:]
            section.append((rtype_, _txt(data) if rtype_ == "TXT" else data.rstrip(".")))
    return result


@pytest.fixture
def client(godaddy):
    return GoDaddyClient(godaddy.url, "test-key", "test-secret", timeout=10)


def test_apex_a_is_authoritative(godaddy_dns):
    r = ask(godaddy_dns, "example.org", "A")
    assert r.status == "NOERROR" and "aa" in r.flags
    assert r.answer == [("A", "203.0.113.1")]


def test_records_written_through_the_api_are_served_at_once(godaddy, godaddy_dns, client):
    client.replace_set("example.org", "TXT", "_acme-challenge.x", [{"data": "tok-1", "ttl": 600}, {"data": "tok-2", "ttl": 600}])
    client.replace_set("example.org", "AAAA", "www", [{"data": "2001:db8::10", "ttl": 600}])
    r = ask(godaddy_dns, "_acme-challenge.x.example.org", "TXT")
    assert r.status == "NOERROR" and sorted(r.answer) == [("TXT", "tok-1"), ("TXT", "tok-2")]
    assert ask(godaddy_dns, "www.example.org", "AAAA").answer == [("AAAA", "2001:db8::10")]
    client.delete_set("example.org", "TXT", "_acme-challenge.x")
    assert ask(godaddy_dns, "_acme-challenge.x.example.org", "TXT").status == "NXDOMAIN"


def test_name_without_the_type_is_noerror_with_soa(godaddy_dns):
    r = ask(godaddy_dns, "example.org", "AAAA")
    assert r.status == "NOERROR" and r.answer == []
    assert [rr[0] for rr in r.authority] == ["SOA"]


def test_unknown_name_is_nxdomain_and_other_zones_refused(godaddy_dns):
    r = ask(godaddy_dns, "nope.example.org", "A")
    assert r.status == "NXDOMAIN" and "aa" in r.flags and r.answer == []
    assert r.authority[0][0] == "SOA" and "hostmaster.example.org" in r.authority[0][1]
    r = ask(godaddy_dns, "example.com", "A")
    assert r.status == "REFUSED" and "aa" not in r.flags
    assert ask(godaddy_dns, "notexample.org", "A").status == "REFUSED"


def test_empty_non_terminal_exists(godaddy, godaddy_dns, client):
    client.replace_set("example.org", "TXT", "_acme-challenge.x", [{"data": "tok", "ttl": 600}])
    assert ask(godaddy_dns, "x.example.org", "A").status == "NOERROR"
    assert ask(godaddy_dns, "_acme-challenge.x.example.org", "A").status == "NOERROR"
    assert ask(godaddy_dns, "y.example.org", "A").status == "NXDOMAIN"


def test_cname_followed_in_zone_and_names_case_insensitive(godaddy, godaddy_dns, client):
    client.replace_set("example.org", "CNAME", "www", [{"data": "@", "ttl": 600}])
    r = ask(godaddy_dns, "WWW.Example.ORG", "A")
    assert r.status == "NOERROR"
    assert r.answer == [("CNAME", "example.org"), ("A", "203.0.113.1")]
    assert ask(godaddy_dns, "www.example.org", "CNAME").answer == [("CNAME", "example.org")]


def test_wildcard_answers_missing_names(godaddy, godaddy_dns, client):
    client.replace_set("example.org", "A", "*.apps", [{"data": "203.0.113.7", "ttl": 600}])
    client.replace_set("example.org", "A", "known.apps", [{"data": "203.0.113.8", "ttl": 600}])
    assert ask(godaddy_dns, "foo.apps.example.org", "A").answer == [("A", "203.0.113.7")]
    assert ask(godaddy_dns, "known.apps.example.org", "A").answer == [("A", "203.0.113.8")]
    assert ask(godaddy_dns, "foo.other.example.org", "A").status == "NXDOMAIN"


def test_ns_soa_mx_and_long_txt(godaddy, godaddy_dns, client):
    long_value = "v=" + "x" * 400
    client.replace_set("example.org", "TXT", "@", [{"data": long_value, "ttl": 600}])
    client.replace_set("example.org", "MX", "@", [{"data": "mail.example.org", "priority": 10, "ttl": 600}])
    assert ask(godaddy_dns, "example.org", "TXT").answer == [("TXT", long_value)]
    assert sorted(rr[1] for rr in ask(godaddy_dns, "example.org", "NS").answer) == ["ns1.domaincontrol.com", "ns2.domaincontrol.com"]
    assert [rr[0] for rr in ask(godaddy_dns, "example.org", "SOA").answer] == ["SOA"]
    assert ask(godaddy_dns, "example.org", "MX").answer == [("MX", "10 mail.example.org")]


def test_tcp_and_truncation_over_udp(godaddy, godaddy_dns, client):
    values = [{"data": "value-%02d-%s" % (i, "y" * 40), "ttl": 600} for i in range(20)]
    client.replace_set("example.org", "TXT", "big", values)
    r = ask(godaddy_dns, "big.example.org", "TXT", use_dig=False)  # no EDNS: 512 bytes at most
    assert "tc" in r.flags and r.answer == []
    r = ask(godaddy_dns, "big.example.org", "TXT", tcp=True)
    assert len(r.answer) == 20
    r = ask(godaddy_dns, "big.example.org", "TXT")  # dig retries over TCP by itself
    assert len(r.answer) == 20


def test_malformed_queries_do_not_stop_the_server(godaddy_dns):
    host, port = godaddy_dns.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        # a header promising one question, then a label that runs past the end
        sock.sendto(struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x3fabc", (host, port))
        reply = sock.recvfrom(512)[0]
        assert struct.unpack("!H", reply[:2])[0] == 0x1234 and reply[3] & 0xF == dnsmod.FORMERR
        sock.sendto(b"\x01\x02", (host, port))  # not even a header: no answer
        # a compression loop in the question
        sock.sendto(struct.pack("!HHHHHH", 0x2345, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01", (host, port))
        reply = sock.recvfrom(512)[0]
        assert struct.unpack("!H", reply[:2])[0] == 0x2345 and reply[3] & 0xF == dnsmod.FORMERR
    assert ask(godaddy_dns, "example.org", "A").status == "NOERROR"
    assert ask(godaddy_dns, "example.org", "A", use_dig=False).answer == [("A", "203.0.113.1")]


def test_freeze_serves_a_snapshot(godaddy, godaddy_dns, client):
    godaddy_dns.freeze()
    client.replace_set("example.org", "TXT", "_acme-challenge", [{"data": "later", "ttl": 600}])
    assert ask(godaddy_dns, "_acme-challenge.example.org", "TXT").status == "NXDOMAIN"
    godaddy_dns.thaw()
    assert ask(godaddy_dns, "_acme-challenge.example.org", "TXT").answer == [("TXT", "later")]
