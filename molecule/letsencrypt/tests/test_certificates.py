"""Certificates from a real ACME server (Pebble on mol-le-ca), checked from the outside: the front
door on mol-le-web serves a certificate that chains to Pebble's root, renewals replace it and
are served without an nginx reload, DNS-01 goes through the GoDaddy API and its DNS, and TLS passes testssl.sh."""
import json
import os
import re

import testinfra.utils.ansible_runner

from sciops_testing import node, run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("frontdoor")

WEB = "172.30.46.20"
NAME = "web.example.test"
ROOT = "/tmp/pebble-root.pem"
CA = node("mol-le-ca")
CONVERGE = "molecule/letsencrypt/converge.yml"


def ca_root():
    """Pebble makes a new root on every start; fetch the current one from its management API."""
    CA.check_output(f"curl -sfk https://127.0.0.1:15000/roots/0 -o {ROOT}")
    return CA.file(ROOT).content_string


def served_serial(name=NAME):
    out = CA.check_output(
        f"openssl s_client -connect {WEB}:443 -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -serial")
    return out.strip().split("=", 1)[1]


def archived(host, cert):
    return sorted(host.file(f"/etc/letsencrypt/archive/{cert}").listdir())


def test_certificates_were_requested_once_and_not_again_by_the_second_converge(host):
    # converge issued each certificate once; the idempotence run requested nothing.
    assert [f for f in archived(host, NAME) if f.startswith("cert")] == ["cert1.pem"]
    assert [f for f in archived(host, "wild.example.test") if f.startswith("cert")] == ["cert1.pem"]


def test_front_door_serves_the_issued_certificate_chained_to_pebbles_root(host):
    ca_root()
    page = CA.check_output(f"curl -sS --fail --cacert {ROOT} --resolve {NAME}:443:{WEB} https://{NAME}/")
    assert "<title>Neuromorphic Computing platform</title>" in page
    verify = CA.run(f"openssl s_client -connect {WEB}:443 -servername {NAME} -CAfile {ROOT} -verify_return_error </dev/null")
    assert verify.rc == 0 and "Verify return code: 0 (ok)" in verify.stdout
    issuer = host.check_output(f"openssl x509 -in /etc/letsencrypt/live/{NAME}/cert.pem -noout -issuer")
    assert "Pebble" in issuer
    assert host.file(f"/etc/letsencrypt/live/{NAME}/cert.pem").exists
    assert served_serial() == host.check_output(
        f"openssl x509 -in /etc/letsencrypt/live/{NAME}/cert.pem -noout -serial").split("=", 1)[1]


def test_http_redirects_to_https_and_hsts_is_sent(host):
    head = CA.check_output(f"curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' --resolve {NAME}:80:{WEB} http://{NAME}/some/path")
    assert head == f"301 https://{NAME}/some/path"
    headers = CA.check_output(f"curl -sS -D - -o /dev/null --cacert {ROOT} --resolve {NAME}:443:{WEB} https://{NAME}/")
    assert re.search(r"(?im)^strict-transport-security: max-age=31536000", headers)


def test_acme_challenges_are_served_for_any_name_on_port_80(host):
    host.run("mkdir -p /var/www/acme/.well-known/acme-challenge && echo probe > /var/www/acme/.well-known/acme-challenge/probe")
    for name in (NAME, "not-yet-a-service.example.test"):
        body = CA.check_output(f"curl -sS --fail -H 'Host: {name}' http://{WEB}/.well-known/acme-challenge/probe")
        assert body.strip() == "probe"
    host.run("rm -f /var/www/acme/.well-known/acme-challenge/probe")


def test_dns01_wildcard_certificate_through_godaddy(host):
    pem = host.check_output("openssl x509 -in /etc/letsencrypt/live/wild.example.test/cert.pem -noout -ext subjectAltName")
    assert "DNS:wild.example.test" in pem and "DNS:*.wild.example.test" in pem
    root = ca_root()
    host.run(f"cat > {ROOT} <<'EOF'\n{root}\nEOF")
    verify = host.run(f"openssl verify -CAfile {ROOT} -untrusted /etc/letsencrypt/live/wild.example.test/chain.pem "
                      "/etc/letsencrypt/live/wild.example.test/cert.pem")
    assert verify.rc == 0, verify.stderr
    # The hook cleaned up after itself: no challenge TXT left in the zone, only the A records.
    left = json.loads(CA.check_output(
        "curl -sS -H 'Authorization: sso-key test-key:test-secret' http://127.0.0.1:8080/v1/domains/example.test/records/TXT"))
    assert left == []
    log = CA.check_output("journalctl -u godaddy-test --no-pager -o cat")
    assert "_acme-challenge.wild" in log


def test_renewal_runs_from_certbots_timer(host):
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    nxt = host.check_output("systemctl show certbot.timer -p NextElapseUSecRealtime --value")
    assert nxt.strip() not in ("", "n/a", "0")
    # The timer's service itself works against the CA (nothing is due yet, so nothing is renewed).
    run = host.run("systemctl start certbot.service")
    assert run.rc == 0, run.stderr
    assert host.check_output("systemctl show certbot.service -p Result --value") == "success"
    assert "No renewals were attempted" in host.check_output("journalctl -u certbot.service --no-pager -o cat -n 50")


def test_forced_renewal_replaces_the_served_certificate_without_a_reload(host):
    """The front door reads its certificates at each handshake from its own copy (full chain and
    key in one file), which certbot's deploy hook replaces in one rename: no nginx reload."""
    before = served_serial()
    nginx = host.check_output("pgrep -d, nginx")
    out = host.check_output(
        f"REQUESTS_CA_BUNDLE=/etc/sciops/letsencrypt/acme-ca.pem certbot renew --force-renewal --no-random-sleep-on-renew --cert-name {NAME} 2>&1")
    assert "reloaded nginx" not in out
    assert host.check_output("pgrep -d, nginx") == nginx, "the renewal reloaded nginx"
    bundle = host.file(f"/etc/nginx/sciops-tls/{NAME}.pem")
    assert bundle.mode == 0o640 and bundle.group == "www-data"
    assert host.file(f"/etc/letsencrypt/live/{NAME}/fullchain.pem").content_string in bundle.content_string
    after = served_serial()
    assert after != before
    assert after == host.check_output(f"openssl x509 -in /etc/letsencrypt/live/{NAME}/cert.pem -noout -serial").split("=", 1)[1]
    # The other certificate was not touched.
    assert [f for f in archived(host, "wild.example.test") if f.startswith("cert")] == ["cert1.pem"]


def test_after_the_ca_forgets_everything_a_run_registers_again_and_reissues(host):
    # Pebble keeps accounts in memory and makes a new root at every start (like a CA that changed
    # its root and lost the account): the next run sets the old account aside, registers a new
    # one and re-issues what no longer chains to the root; the run after that requests nothing.
    CA.check_output("systemctl restart pebble")
    run = run_playbook(CONVERGE)
    assert run.rc == 0, run.output[-3000:]
    flat = " ".join(run.output.split())
    assert "chain does not verify against the root" in flat
    assert host.file("/etc/letsencrypt/accounts/172.30.46.10:14000/dir.unknown-to-server").is_directory
    ca_root()
    page = CA.check_output(f"curl -sS --fail --cacert {ROOT} --resolve {NAME}:443:{WEB} https://{NAME}/")
    assert "<title>Neuromorphic Computing platform</title>" in page
    again = run_playbook(CONVERGE)
    assert again.rc == 0 and again.recap()["mol-le-web"]["changed"] == 0, again.output[-3000:]


def test_check_mode_on_the_converged_hosts_changes_nothing_and_prints_no_secret(host):
    run = run_playbook(CONVERGE, "--check", "--diff", "-vv")
    assert run.rc == 0, run.output[-3000:]
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in run.recap().values()), run.recap()
    assert "test-secret" not in run.output  # the GoDaddy API secret of the DNS-01 hook


def test_a_wildcard_over_http01_is_refused_with_one_clear_message(host):
    bad = json.dumps({"letsencrypt_host_certificates": [{"name": "bad", "domains": ["*.bad.example.test"]}]})
    run = run_playbook(CONVERGE, "-e", bad)
    assert run.rc != 0
    assert "certificate(s) bad contain a wildcard: set challenge: dns-01" in " ".join(run.output.split())
    assert not host.file("/etc/letsencrypt/renewal/bad.conf").exists


def test_adding_a_domain_reissues_and_a_repeat_run_requests_nothing(host):
    services = [{"name": "web", "kind": "static", "server_name": NAME, "server_aliases": ["extra1.example.test"], "index": "home.html",
                 "source": {"archive": os.environ["SCIOPS_NMPI_ARCHIVE"], "strip_components": 1, "subdir": "documentation/splash"}}]
    extra = json.dumps({"webservice_services": services})
    first = run_playbook(CONVERGE, "-e", extra)
    assert first.rc == 0, first.output[-3000:]
    assert first.recap()["mol-le-web"]["changed"] > 0
    assert "domains web.example.test -> extra1.example.test web.example.test" in first.output
    san = host.check_output(f"openssl x509 -in /etc/letsencrypt/live/{NAME}/cert.pem -noout -ext subjectAltName")
    assert "DNS:extra1.example.test" in san
    ca_root()
    page = CA.check_output(f"curl -sS --fail --cacert {ROOT} --resolve extra1.example.test:443:{WEB} https://extra1.example.test/")
    assert "<title>Neuromorphic Computing platform</title>" in page
    again = run_playbook(CONVERGE, "-e", extra)
    assert again.rc == 0 and again.recap()["mol-le-web"]["changed"] == 0, again.output[-3000:]


def test_tls_has_no_high_or_critical_findings_by_testssl(host):
    ca_root()
    CA.run("rm -f /tmp/testssl.json")
    run = CA.run(f"testssl --quiet --color 0 --warnings off --ip {WEB} --add-ca {ROOT} "
                 f"--jsonfile /tmp/testssl.json https://{NAME}/")
    findings = json.loads(CA.file("/tmp/testssl.json").content_string)
    bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
    print("testssl.sh:", {sev: sum(1 for f in findings if f.get("severity") == sev)
                          for sev in ("OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")})
    assert findings, run.stdout[-2000:]
    assert not bad, bad
    print("testssl.sh LOW/MEDIUM:", [(f["id"], f["finding"]) for f in findings if f.get("severity") in ("LOW", "MEDIUM")])
    hsts = [f for f in findings if f["id"].startswith("HSTS")]
    assert hsts and all(f["severity"] in ("OK", "INFO") for f in hsts), hsts
    chain = [f for f in findings if f["id"].startswith("cert_chain_of_trust")]
    assert chain and all(f["severity"] == "OK" for f in chain), chain
