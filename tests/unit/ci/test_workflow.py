"""Continuous deployment (issue 16): .github/workflows/platform.yml runs make test on every pull request and,
after a merge to main (a release tag), launches "staging | site" ("production | site") through the template's
AWX webhook with scripts/awx-webhook.py. The workflow is validated against GitHub's own schema (SchemaStore's
github-workflows, vendored by check-jsonschema: offline); the webhook call runs against the AWX test double's
receiver, which checks the signature as AWX does."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
for path in (ROOT,):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.servers.awx import AwxServer  # noqa: E402  (needs the path above)

BIN = Path(sys.executable).parent
WORKFLOW = ROOT / ".github" / "workflows" / "platform.yml"
WEBHOOK = ROOT / "scripts" / "awx-webhook.py"
KEY_ENV = "AWX_WEBHOOK_KEY"
SHA = "0123456789abcdef0123456789abcdef01234567"


def validate(path):
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def workflow():
    # "on" is quoted in the file; PyYAML would read a bare on as True.
    return yaml.safe_load(WORKFLOW.read_text())


# --- the workflow file -----------------------------------------------------------------------------
def test_the_workflow_passes_githubs_schema():
    proc = validate(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


@pytest.mark.parametrize("broken, where", [
    (("    runs-on: ubuntu-24.04\n    timeout-minutes: 150\n", "    runs_on: ubuntu-24.04\n    timeout-minutes: 150\n"), "runs_on"),
    (("  pull_request:\n", "  pull_requests:\n"), "pull_requests"),
    (("    needs: test\n    if: github.event_name == 'push' && github.ref == 'refs/heads/main'\n",
      "    needs: test\n    iff: github.event_name == 'push' && github.ref == 'refs/heads/main'\n"), "iff"),
    (("    timeout-minutes: 150\n", "    timeout-minutes: an hour\n"), "an hour"),
], ids=["job key", "trigger", "job condition", "type"])
def test_the_schema_refuses_a_misspelt_or_mistyped_key(tmp_path, broken, where):
    text = WORKFLOW.read_text()
    old, new = broken
    assert text.count(old) >= 1
    path = tmp_path / "platform.yml"
    path.write_text(text.replace(old, new, 1))
    proc = validate(path)
    assert proc.returncode != 0, proc.stdout
    assert where in proc.stdout + proc.stderr


def test_every_pull_request_runs_make_test_and_merges_and_tags_deploy_after_it():
    flow = workflow()
    assert flow["on"]["pull_request"]["branches"] == ["main"]
    assert flow["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert flow["permissions"] == {"contents": "read"}
    jobs = flow["jobs"]
    runs = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert any(re.search(r"(^|\s)make test$", run.strip()) for run in runs)
    assert "if" not in jobs["test"]
    assert jobs["deploy-staging"]["needs"] == "test" and jobs["deploy-production"]["needs"] == "test"
    assert jobs["deploy-staging"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["deploy-production"]["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec make test")


def test_the_deploy_jobs_launch_the_environments_site_template_with_secrets_from_the_forge():
    templates = yaml.safe_load((ROOT / "awx" / "templates.yml").read_text())["controller_templates"]
    hooked = {t["name"]: t["webhook_service"] for t in templates if t.get("webhook_service")}
    # Only the environments' site: a webhook key can start nothing else.
    assert hooked == {"staging | site": "github", "production | site": "github"}
    jobs = workflow()["jobs"]
    for env in ("staging", "production"):
        job = jobs["deploy-%s" % env]
        assert job["name"] == "%s | site" % env and job["environment"] == env
        (step,) = [s for s in job["steps"] if "awx-webhook.py" in s.get("run", "")]
        assert step["env"]["AWX_WEBHOOK_URL"] == "${{ secrets.AWX_WEBHOOK_URL }}"
        assert step["env"][KEY_ENV] == "${{ secrets.AWX_WEBHOOK_KEY }}"
        assert "AWX_WEBHOOK_KEY" not in step["run"]  # never on a command line
    text = WORKFLOW.read_text()
    assert not re.search(r"(?i)(token|key|password)\s*[:=]\s*['\"]?[A-Za-z0-9_\-]{16,}", text.replace("${{ secrets.", ""))


def test_lint_and_the_collection_build_leave_the_workflow_in():
    # The tarball excludes it (it is the forge's, not the collection's); yamllint checks it like every YAML file.
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert ".github" in galaxy["build_ignore"]
    proc = subprocess.run([str(BIN / "yamllint"), "--strict", str(WORKFLOW)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


# --- the webhook call against AWX's receiver --------------------------------------------------------
def api(server, method, path, body=None):
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode() if body is not None else None, method=method,
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer test-token"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def awx():
    server = AwxServer(project_dir=ROOT).start()
    assert api(server, "POST", "/api/v2/organizations/", {"name": "sciops"})[0] == 201
    org = server.find("organizations", "sciops")["id"]
    assert api(server, "POST", "/api/v2/projects/", {"name": "sciops-platform", "organization": org, "scm_type": "git",
                                                     "scm_url": "https://github.com/sciops/platform.git"})[0] == 201
    assert api(server, "POST", "/api/v2/inventories/", {"name": "sciops staging", "organization": org})[0] == 201
    common = {"project": server.find("projects", "sciops-platform")["id"], "inventory": server.find("inventories", "sciops staging")["id"]}
    status, site = api(server, "POST", "/api/v2/job_templates/", dict(common, name="staging | site", playbook="playbooks/staging.yml",
                                                                      webhook_service="github"))
    assert status == 201, site
    status, other = api(server, "POST", "/api/v2/job_templates/", dict(common, name="staging | dns", playbook="playbooks/dns.yml"))
    assert status == 201, other
    server.site, server.other = site, other
    yield server
    server.stop()
    assert server.violations == []


def hook(url, key, *args, sha=SHA):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWX_", "GITHUB_"))}
    env.update(AWX_WEBHOOK_URL=url, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    if key is not None:
        env[KEY_ENV] = key
    cmd = [sys.executable, str(WEBHOOK), "--ref", "refs/heads/main", "--sha", sha, "--repository", "sciops/platform",
           "--actor", "alice", "--backoff", "0"] + list(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_signed_push_launches_the_template_once_per_delivery(awx):
    status, key = api(awx, "GET", "/api/v2/job_templates/%d/webhook_key/" % awx.site["id"])
    assert status == 200 and key["webhook_key"]
    url = awx.url + awx.site["related"]["webhook_receiver"]
    assert url.endswith("/api/v2/job_templates/%d/github/" % awx.site["id"])
    proc = hook(url, key["webhook_key"], "--attempt", "7.1")
    assert proc.returncode == 0, proc.stderr
    assert "AWX: Job queued." in proc.stdout and key["webhook_key"] not in proc.stdout + proc.stderr
    (job,) = awx.jobs
    assert job["job_template"] == awx.site["id"] and job["launch_type"] == "webhook"
    assert job["extra_vars"]["tower_webhook_event_type"] == "push" and job["extra_vars"]["tower_webhook_event_ref"] == SHA
    assert job["extra_vars"]["tower_webhook_payload"]["sender"] == {"login": "alice"}
    # The same run again (a retried request) launches nothing; a new attempt of the CI run deploys again.
    again = hook(url, key["webhook_key"], "--attempt", "7.1")
    assert again.returncode == 0 and "Webhook previously received, aborting." in again.stdout and len(awx.jobs) == 1
    assert hook(url, key["webhook_key"], "--attempt", "7.2").returncode == 0 and len(awx.jobs) == 2


def test_a_wrong_key_a_template_without_webhook_and_a_rotated_key_are_refused(awx):
    url = awx.url + awx.site["related"]["webhook_receiver"]
    proc = hook(url, "not-the-key")
    assert proc.returncode == 1 and "AWX refused the signature (403)" in proc.stderr and "not-the-key" not in proc.stderr
    other = awx.url + "/api/v2/job_templates/%d/github/" % awx.other["id"]
    proc = hook(other, awx.webhook_keys[awx.site["id"]])
    assert proc.returncode == 1 and "has no job template with a GitHub webhook" in proc.stderr
    old = awx.webhook_keys[awx.site["id"]]
    status, new = api(awx, "POST", "/api/v2/job_templates/%d/webhook_key/" % awx.site["id"])
    assert status == 201 and new["webhook_key"] != old
    assert hook(url, old).returncode == 1 and hook(url, new["webhook_key"]).returncode == 0
    assert len(awx.jobs) == 1


def test_a_lost_request_or_a_5xx_is_retried_with_the_same_delivery(awx):
    url = awx.url + awx.site["related"]["webhook_receiver"]
    awx.inject("500", method="POST", path=r"/github/$")
    awx.inject("lost", method="POST", path=r"/github/$")
    proc = hook(url, awx.webhook_keys[awx.site["id"]])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("again in") == 2
    # The lost request was applied by AWX before the connection dropped: the retry finds it and queues nothing more.
    assert len(awx.jobs) == 1 and "Webhook previously received" in proc.stdout
    deliveries = {c.headers["x-github-delivery"] for c in awx.calls("POST", r"/github/$")}
    assert len(deliveries) == 1


@pytest.mark.parametrize("url, key, sha, message", [
    ("http://awx.example.org/api/v2/job_templates/1/github/", "k", SHA, "must be https"),
    ("https://awx.example.org/api/v2/job_templates/1/launch/", "k", SHA, "GitHub receiver"),
    ("https://user:pw@awx.example.org/api/v2/job_templates/1/github/", "k", SHA, "no credentials"),
    ("https://awx.example.org/api/v2/job_templates/1/github/", None, SHA, "set AWX_WEBHOOK_KEY"),
    ("https://awx.example.org/api/v2/job_templates/1/github/", "k", "main", "--sha must be a full commit id"),
], ids=["plain http", "launch url", "credentials in url", "no key", "short sha"])
def test_bad_inputs_are_refused_before_any_request(url, key, sha, message):
    proc = hook(url, key, sha=sha)
    assert proc.returncode != 0 and message in proc.stderr


def test_the_double_refuses_an_unknown_webhook_service(awx):
    status, body = api(awx, "PATCH", "/api/v2/job_templates/%d/" % awx.other["id"], {"webhook_service": "bitbucket"})
    assert status == 400 and body == {"webhook_service": ['"bitbucket" is not a valid choice.']}
    status, body = api(awx, "PATCH", "/api/v2/job_templates/%d/" % awx.site["id"], {"webhook_service": ""})
    assert status == 200 and "webhook_receiver" not in body["related"] and awx.site["id"] not in awx.webhook_keys
