#!/usr/bin/env python3
"""AWX's job templates, launched the way AWX launches them, against the local environment.

    python tests/local/e2e-awx.py              every staging template (tests/local/e2e.sh calls this)
    python tests/local/e2e-awx.py --list       the plan: what runs, in which order, and what does not run, with why
    python tests/local/e2e-awx.py --only NAME  one template (its name after "staging | "), e.g. --only "service status"
    python tests/local/e2e-awx.py --ee IMAGE   "service status" in the execution environment IMAGE (make ee builds
                                               sciops/ee:local), with ansible-runner's --process-isolation

AWX runs a job template with ansible-runner: the project's checkout as the job's project folder, the
template's extra variables, then its survey's defaults, then the operator's answers (AWX's
precedence, awx/main/models/mixins.py _update_unified_job_kwargs), AWX's own awx_*/tower_* variables,
`--check` for job_type check, `--diff` for diff_mode, and the vault credential. This does the same
with ansible_runner.run() for each template of awx/templates.yml of one environment (staging: each
operation once), mapped to the local environment: the inventory is inventories/local, the
environment's wrapper playbook (playbooks/staging.yml) becomes playbooks/local.yml, and the vault
password comes from ansible.cfg's vault_identity_list (the local, throwaway one) where AWX would
pass the vault credential. The project folder is a copy of the repository's files (tracked and
untracked, not ignored), as AWX's project sync makes one, so a job writes (backups/, logs/) into the
copy, never into the checkout.

Each run must end `successful` (rc 0) and meet its expectation from the runner's events:
`noop` (changed=0 on every host: the converge templates on a converged platform, the check
templates whose real run would change nothing), `changes` (changed > 0), or an exact count; a
`verify` step then checks the effect from outside (the colour deployed, the database and the forum
restored). The read-only and check-mode runs go two at a time, and the nodes' managed trees must be
the same before and after them; the changing ones run in two lanes side by side (the front door and
the colours; the rest), then the database restore and the whole platform alone. No output of any
job may hold a value of the local vault.
Templates that are not run are listed in NOT_RUN with the reason and printed in the summary; a
template of awx/templates.yml in neither list fails the check.

Needs the local environment up (make up) and SCIOPS_NMPI_ARCHIVE (the Makefile sets it).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = "staging"  # the templates of one environment cover every operation once
OUTPUT = ROOT / "tests" / "output" / "awx-runner"
JOB_TIMEOUT = 600  # seconds; AWX's job template timeout is 0 (none), a hung job must not hang make test

# Variables AWX adds to every job's extra variables (awx/main/models/jobs.py awx_meta_vars; the
# tower_* names are the old spellings it still sends). The playbooks' validation must accept them.
AWX_META_VARS = {
    "awx_job_id": 1, "awx_job_launch_type": "manual", "awx_job_template_id": 1,
    "awx_inventory_id": 1, "awx_inventory_name": "sciops staging", "awx_project_revision": "local",
    "awx_project_scm_branch": "main", "awx_user_id": 1, "awx_user_name": "admin", "awx_execution_node": "local",
    "tower_job_id": 1, "tower_job_launch_type": "manual", "tower_user_name": "admin",
}


def log(message: str) -> None:
    print(f"[local-e2e-awx] {message}", flush=True)


class Failed(Exception):
    pass


# --- the local environment, read from outside (docker exec) ------------------------------------
def node(host: str, *argv: str, check: bool = True) -> str:
    done = subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise Failed(f"docker exec {host} {' '.join(argv)}: {done.stderr.strip()[-300:]}")
    return done.stdout


def psql(sql: str) -> str:
    """One value from the nmpi database on local-db1 (as postgres, over its socket)."""
    return node("local-db1", "runuser", "-u", "postgres", "--", "psql", "-d", "nmpi", "-Atc", sql).strip()


def live_colour(service: str) -> str:
    colour = node("local-app1", "readlink", f"/etc/sciops/frontdoor/{service}/live", check=False).strip()
    if colour not in ("blue", "green"):
        raise Failed(f"the front door records no live colour for {service} ({colour!r})")
    return colour


def node_trees() -> dict[str, str]:
    """Per node, a digest of path, size and mtime of every file under the trees the playbooks manage
    (as tests/local/e2e-validate.sh compares them)."""
    names = subprocess.run(["docker", "ps", "--filter", "label=org.sciops.environment=local", "--format", "{{.Names}}"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not names:
        raise Failed("no node of the local environment is up (make up first)")
    script = "find /etc /srv /var/lib/sciops -xdev -type f -printf '%p %s %T@\\n' 2>/dev/null | sort | md5sum"
    return {name: node(name, "sh", "-c", script).split()[0] for name in sorted(names)}


def forum_stats() -> dict:
    return json.loads(node("local-forum1", "/usr/local/bin/standin-forum", "--db", "discourse", "stats"))


def newest_forum_backup() -> str:
    out = node("local-forum1", "sh", "-c", "ls -t /var/discourse/shared/standalone/backups/default/*.tar.gz | head -1").strip()
    if not out:
        raise Failed("the stand-in forum has no backup")
    return out.rsplit("/", 1)[-1]


# --- what a job saw (from the runner's events) ----------------------------------------------------
@dataclass
class Job:
    template: dict
    playbook: str
    extra_vars: dict
    cmdline: str
    status: str = ""
    rc: int | None = None
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)
    changed_tasks: list = field(default_factory=list)
    failed_tasks: list = field(default_factory=list)
    no_hosts_plays: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    stdout: str = ""

    @property
    def name(self) -> str:
        return self.template["name"]

    def total(self, key: str) -> int:
        return sum((self.stats.get(key) or {}).values())

    def recap(self) -> str:
        return " ".join(f"{key}={self.total(key)}" for key in ("ok", "changed", "failures", "dark", "skipped"))

    def event(self, data: dict) -> bool:
        """ansible-runner's event_handler: keeps what the checks read; returns False (no event files)."""
        kind = data.get("event")
        event_data = data.get("event_data") or {}
        if kind == "playbook_on_stats":
            self.stats = {key: event_data.get(key) or {} for key in ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued")}
        elif kind == "runner_on_ok":
            res = event_data.get("res") or {}
            if res.get("changed"):
                self.changed_tasks.append(f"{event_data.get('host')}: {event_data.get('task')}")
            if event_data.get("task_action") in ("debug", "ansible.builtin.debug") and "msg" in res:
                self.messages.append(res["msg"])
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not event_data.get("ignore_errors"):
            res = event_data.get("res") or {}
            self.failed_tasks.append(f"{event_data.get('host')}: {event_data.get('task')}: {str(res.get('msg', ''))[:400]}")
        elif kind == "playbook_on_no_hosts_matched":
            self.no_hosts_plays.append(event_data.get("play") or data.get("stdout", "").strip())
        return False


# --- the plan -------------------------------------------------------------------------------------
class Context(dict):
    """Values read from the environment or from earlier jobs, for answers and checks."""


Answer = Callable[[Context], object]


@dataclass
class Step:
    template: str                 # the name after "<environment> | "
    expect: object                # "noop", "changes", "no-hosts" (noop, and its plays matched no host), or an int: changed
    answers: dict = field(default_factory=dict)   # survey answers: value or Answer(ctx)
    before: Callable[[Context], None] | None = None
    verify: Callable[[Context, Job], None] | None = None
    allow_changed: tuple = ()     # tasks that may report changed where "noop" is expected (each with why)


def idle(ctx: Context) -> str:
    return "green" if ctx["splash_live"] == "blue" else "blue"


# The operator's answers: required questions without a usable default, and answers the local
# environment needs instead of a default. One entry per answer, with why.
SPLASH = {
    # splash: a static site from the local archive (the job-queue API's colours build a virtualenv,
    # minutes; docs run Sphinx): the quickest service to deploy, switch, roll back and terminate.
    "service": "splash",
    # the idle colour (deploy and terminate refuse the live one), read from the front door first
    "colour": idle,
}
NMPI = {"service": "nmpi_queue"}  # the job-queue API: its health is read over HTTP, its journal has lines
DB_RESTORE = {
    # the dump the database dump template wrote just before (the path in its "Dumped ... to PATH" message)
    "db_dump_file": lambda ctx: ctx["dump_file"],
    # nmpi holds tables: the default (false) refuses to replace them, as it should; the operator says yes
    "db_restore_overwrite": "true",
}
# the newest backup of the stand-in forum (e2e-forum.sh made it and put it in the bucket)
FORUM_BACKUP = {"discourse_backup_restore_backup": lambda ctx: ctx["forum_backup"]}


def before_read_only(ctx: Context) -> None:
    # e2e.sh's table of the app user (made here too when this runs on its own)
    psql("SET ROLE nmpi_dbadmin; CREATE TABLE IF NOT EXISTS e2e (id int)")
    ctx["splash_live"] = live_colour("splash")
    ctx["nmpi_live"] = live_colour("nmpi_queue")
    ctx["forum_backup"] = newest_forum_backup()


def verify_dump(ctx: Context, job: Job) -> None:
    found = [m for m in job.messages if isinstance(m, str) and m.startswith("Dumped nmpi from local-db1 to ")]
    if not found:
        raise Failed("no 'Dumped nmpi from local-db1 to PATH' message")
    path = Path(found[0].split(" to ", 1)[1].split(" (", 1)[0])
    if not path.is_file() or path.stat().st_size == 0 or ctx["project"] not in path.parents:
        raise Failed(f"the dump {path} is not a file in the job's project folder")
    ctx["dump_file"] = str(path)
    ctx["e2e_rows"] = psql("SELECT count(*) FROM e2e")  # e2e.sh's table (made before the dump, below)


def verify_logs(ctx: Context, job: Job) -> None:
    logs = list((ctx["project"] / "logs").glob(f"nmpi_queue-{ctx['nmpi_live']}-local-app1-*.log"))
    if len(logs) != 1 or not logs[0].read_text().strip():
        raise Failed(f"expected one non-empty log file of nmpi_queue-{ctx['nmpi_live']} in the project's logs/, found {logs}")


def verify_still_there(ctx: Context, job: Job) -> None:
    """remove nodes (check): every node still runs."""
    running = subprocess.run(["docker", "ps", "--filter", "label=org.sciops.environment=local", "--format", "{{.Names}}"],
                             capture_output=True, text=True, check=True).stdout.split()
    if "local-forum1" not in running or len(running) < 5:
        raise Failed(f"a node is gone after the check run: {sorted(running)}")


def record_path(ctx: Context) -> str:
    return f"/etc/sciops/services/splash/{idle(ctx)}.json"


def verify_deployed(ctx: Context, job: Job) -> None:
    node("local-app1", "test", "-f", record_path(ctx))
    if live_colour("splash") != ctx["splash_live"]:
        raise Failed("deploy service changed the live colour")


def verify_terminate_check(ctx: Context, job: Job) -> None:
    node("local-app1", "test", "-f", record_path(ctx))  # still deployed: the check removed nothing


def verify_switched(ctx: Context, job: Job) -> None:
    if live_colour("splash") != idle(ctx):
        raise Failed(f"switch colour did not make {idle(ctx)} live")
    body = subprocess.run(["curl", "-sSk", "--resolve", "www.local.sciops.test:443:172.30.40.21", "https://www.local.sciops.test/"],
                          capture_output=True, text=True, timeout=30, check=False).stdout
    if "</html>" not in body:
        raise Failed("www.local.sciops.test does not answer after the switch")


def verify_rolled_back(ctx: Context, job: Job) -> None:
    if live_colour("splash") != ctx["splash_live"]:
        raise Failed(f"rollback did not make {ctx['splash_live']} live again")


def verify_terminated(ctx: Context, job: Job) -> None:
    if subprocess.run(["docker", "exec", "local-app1", "test", "-e", record_path(ctx)], check=False).returncode == 0:
        raise Failed(f"{record_path(ctx)} is still there after terminate")


def before_db_restore(ctx: Context) -> None:
    # A row written after the dump: the restore must take the database back to the dump.
    psql("INSERT INTO e2e VALUES (42)")


def verify_db_restore(ctx: Context, job: Job) -> None:
    rows = psql("SELECT count(*) FROM e2e")
    if rows != ctx["e2e_rows"]:
        raise Failed(f"after the restore table e2e has {rows} rows, the dump had {ctx['e2e_rows']}")
    # The job-queue API reads the database again (its pool reconnects after the swap).
    for _ in range(20):
        done = subprocess.run(["curl", "-sSk", "--resolve", "nmpi.local.sciops.test:443:172.30.40.21",
                               "https://nmpi.local.sciops.test/statistics/queue-length"],
                              capture_output=True, text=True, timeout=30, check=False)
        if "queue_name" in done.stdout:
            return
        time.sleep(1)
    raise Failed(f"the job-queue API does not read the restored database: {done.stdout[-300:]} {done.stderr[-300:]}")


def before_forum_restore(ctx: Context) -> None:
    ctx["forum_before"] = forum_stats()
    node("local-forum1", "/usr/local/bin/standin-forum", "--db", "discourse", "post", "written after the backup")
    if forum_stats()["posts"] != ctx["forum_before"]["posts"] + 1:
        raise Failed("could not write a post on the stand-in forum")


def verify_forum_restore(ctx: Context, job: Job) -> None:
    after = forum_stats()
    if after != ctx["forum_before"]:
        raise Failed(f"the forum after the restore {after} differs from the backup's {ctx['forum_before']}")
    node("local-forum1", "test", "!", "-e", "/var/lib/standin-forum/restore_enabled")


def verify_drill(ctx: Context, job: Job) -> None:
    if not any(re.search(r"Restore drill of \S+ passed on local-forum1: [1-9][0-9]* users", str(m)) for m in job.messages):
        raise Failed(f"no 'Restore drill of ... passed on local-forum1' message: {job.messages[-3:]}")


def verify_no_gpu(ctx: Context, job: Job) -> None:
    if not job.no_hosts_plays:
        raise Failed("expected its GPU plays to match no host (the local inventory has no gpu_workers group)")


# The local inventory asks the discourse_backup role for the forum key's policy file, in the
# project's backups/ (inventories/local/group_vars/forum/discourse_backup.yml): AWX runs each job in
# a fresh project folder, so every local job of the forum's converge writes it again (staging and
# production write none unless asked); nothing else may change.
POLICY_FILE = ("bucket | Create the folder of the forum key's policy file",
               "bucket | Write the forum key's least-privilege policy for the operator")


def before_drill(ctx: Context) -> None:
    # The newest backup in the bucket, as the uploader's timer puts it there (e2e-forum.sh did it too).
    node("local-forum1", "systemctl", "start", "sciops-discourse-backup-upload.service")


# Run two at a time, nothing on the nodes may change (their managed trees are compared).
READ_ONLY = [
    # the longest (the whole platform in check mode) first: the others run beside it
    Step("site drift check", "noop", allow_changed=POLICY_FILE),
    Step("service status", "noop", NMPI),
    # writes the journal into the job's project folder (logs/ and the file), on the controller only
    Step("service logs", 2, {"service": "nmpi_queue", "colour": lambda ctx: ctx["nmpi_live"]}, verify=verify_logs),
    Step("forum backup status", "noop"),
    Step("gpu worker status", "no-hosts", verify=verify_no_gpu),
    Step("gpu workers (check)", "no-hosts", verify=verify_no_gpu),
    Step("gpu workers with reboots (check)", "no-hosts", verify=verify_no_gpu),
    # the local environment declares no DNS records (its names are resolved with --resolve): no API call
    Step("dns (check)", "noop"),
    # reports the node and the network it would remove
    Step("remove nodes (check)", "changes", {"provision_hosts": "local-forum1"}, verify=verify_still_there),
    # local certificates are always due (20 days, in certbot's 30-day window); certbot does not run in check mode
    Step("renew certificates (check)", "noop"),
    Step("forum restore (check)", "noop", FORUM_BACKUP),
    # pg_dump runs (changed) and the file lands on the controller; the node keeps nothing
    Step("database dump", "changes", verify=verify_dump),
]
# After the dump (it needs its file); still changing nothing.
READ_ONLY_AFTER_DUMP = [
    Step("database restore (check)", "changes", DB_RESTORE),
]
# The changing templates, in two lanes that run side by side, each in its order: the front door
# and the services' colours (local-app1, local-hub1), and the rest (provision on this machine, the
# database, the forum, hardening, which changes nothing); then, alone, the database restore (the
# job-queue API's connections are cut by the swap) and the whole platform.
LANE_FRONT = [
    Step("services", "noop"),
    Step("jupyterhub", "noop"),
    Step("frontdoor", "noop"),
    Step("deploy service", "changes", SPLASH, verify=verify_deployed),
    Step("terminate service colour (check)", "changes", SPLASH, verify=verify_terminate_check),
    Step("switch colour", "changes", SPLASH, verify=verify_switched),
    Step("rollback", "changes", {"service": "splash"}, verify=verify_rolled_back),
    Step("terminate service colour", "changes", SPLASH, verify=verify_terminated),
]
LANE_BACK = [
    Step("provision nodes", "noop"),
    Step("hardening", "noop"),
    Step("postgres", "noop"),
    Step("forum backups", "noop", allow_changed=POLICY_FILE),
    Step("gpu workers", "no-hosts", verify=verify_no_gpu),
    Step("gpu workers with reboots", "no-hosts", verify=verify_no_gpu),
    Step("dns", "noop"),
    # ok is the status it has: only its record on the host may be written (none after a fresh make up)
    Step("service maintenance", "noop", {"service": "nmpi_queue", "status": "ok"}, allow_changed=("Record the status on the host",)),
    # restores the newest backup into a throwaway database and compares its counts: the forum is not changed
    Step("forum restore drill", "noop", before=before_drill, verify=verify_drill),
    Step("forum restore", "changes", FORUM_BACKUP, before=before_forum_restore, verify=verify_forum_restore),
    # local certificates are always due: certbot renews them (the front door serves them without a reload)
    Step("renew certificates", "changes"),
]
LAST = [
    Step("database restore", "changes", DB_RESTORE, before=before_db_restore, verify=verify_db_restore),
    # the whole platform after all of the above: nothing to change (the operations left it as the repository says)
    Step("site", "noop"),
]
CHANGING = LANE_FRONT + LANE_BACK + LAST
# Templates whose real run the test does not launch, with why (printed in the summary).
NOT_RUN = {
    "remove nodes": "removes a node (here the container, on staging a droplet); bringing it back is a cold "
                    "provision and converge of that node (minutes), not restorable inside the test's time: "
                    "its check template runs (what it would remove, nothing removed)",
}


# Templates that run here, but not the way they run on staging (printed in the summary): their
# external APIs are not reachable, and the local inventory leaves them out.
LOCAL_DIFFERENCES = {
    "provision nodes": "the local provider (docker containers) instead of DigitalOcean's API; the DigitalOcean "
                       "provider runs against its API test double in the unit check",
    "remove nodes (check)": "the local provider: it reports the container and the network it would remove",
    "dns": "the local environment declares no dns_records (its names are given with --resolve): no GoDaddy "
           "call; dns.yml against the GoDaddy API test double is in the unit check",
    "dns (check)": "as dns",
    "switch colour": "method proxy (the survey's default): no GoDaddy call; method dns runs against the GoDaddy "
                     "API test double in molecule:services",
    "gpu workers": "no gpu_workers group locally: its plays match no host; molecule:gpu_worker converges "
                   "GPU workers on fake GPUs",
    "gpu workers (check)": "as gpu workers", "gpu workers with reboots": "as gpu workers",
    "gpu workers with reboots (check)": "as gpu workers", "gpu worker status": "as gpu workers",
}


# --- running a template -----------------------------------------------------------------------------
def survey_defaults(template: dict) -> dict:
    """The survey's defaults that AWX merges (those that pass the question's own validation: a
    multiple choice's empty default is not one of its choices, so AWX leaves it out)."""
    out = {}
    for question in (template.get("survey_spec") or {}).get("spec", []) if template.get("survey_enabled") else []:
        default = question.get("default")
        if default is None:
            continue
        if not survey_errors(question, {question["variable"]: default}):
            out[question["variable"]] = default
    return out


def survey_errors(question: dict, data: dict) -> list[str]:
    """AWX's validation of one answer (awx/main/models/mixins.py _survey_element_validation)."""
    name, kind = question["variable"], question["type"]
    if name not in data:
        return [f"'{name}' value missing"] if question.get("required") else []
    value = data[name]
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"Value {value} for '{name}' expected to be a string."]
        if question.get("min") not in ("", None) and len(value) < int(question["min"]):
            return [f"'{name}' value {value} is too small"]
        if question.get("max") not in ("", None) and len(value) > int(question["max"]):
            return [f"'{name}' value {value} is too large"]
    elif kind == "integer":
        if type(value) is not int:  # noqa: E721 (AWX's own test: bool is not an integer answer)
            return [f"Value {value} for '{name}' expected to be an integer."]
        if question.get("min") not in ("", None) and value < int(question["min"]):
            return [f"'{name}' value {value} is too small"]
        if question.get("max") not in ("", None) and value > int(question["max"]):
            return [f"'{name}' value {value} is too large"]
    elif kind == "multiplechoice":
        choices = question["choices"].split("\n") if isinstance(question["choices"], str) else question["choices"]
        if value not in choices:
            return [f"Value {value} for '{name}' expected to be one of {choices}."]
    return []


def launch_vars(template: dict, answers: dict) -> dict:
    """Extra variables of the job: the template's, then the survey's defaults, then the answers
    (AWX's precedence), then AWX's own. Refuses what AWX's launch would refuse: an answer the
    survey does not ask for, an answer that fails the question's validation, and a required
    question left unanswered (an empty default counts as unanswered: AWX's form requires a value)."""
    questions = {q["variable"]: q for q in (template.get("survey_spec") or {}).get("spec", [])} if template.get("survey_enabled") else {}
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise Failed(f"{template['name']}: answers for questions its survey does not ask: {unknown}")
    extra = dict(template.get("extra_vars") or {})
    extra.update(survey_defaults(template))
    extra.update(answers)
    errors = []
    for name, question in questions.items():
        errors += survey_errors(question, extra)
        if question.get("required") and extra.get(name) == "":
            errors.append(f"'{name}' is required and has no answer (add one to the test's answers, with why)")
    if errors:
        raise Failed(f"{template['name']}: AWX would refuse the launch: {'; '.join(errors)}")
    extra.update(AWX_META_VARS)
    extra["awx_job_template_name"] = extra["tower_job_template_name"] = template["name"]
    return extra


def local_playbook(playbook: str) -> str:
    """The environment's wrapper (playbooks/<environment>.yml) is playbooks/local.yml locally."""
    return "playbooks/local.yml" if playbook == f"playbooks/{ENVIRONMENT}.yml" else playbook


def project_copy(dest: Path) -> None:
    """The repository's files as a project sync would check them out (tracked and untracked, not
    ignored: the working tree under test), links kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    names = [n for n in listed.decode().split("\0") if n and os.path.lexists(ROOT / n)]
    dest.mkdir(parents=True)
    pack = subprocess.Popen(["tar", "-C", str(ROOT), "--no-recursion", "--null", "-T", "-", "-cf", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    unpack = subprocess.Popen(["tar", "-C", str(dest), "-xf", "-"], stdin=pack.stdout)
    pack.stdin.write("\0".join(names).encode())
    pack.stdin.close()
    if unpack.wait() != 0 or pack.wait() != 0:
        raise Failed("could not copy the project")


def run_job(ctx: Context, template: dict, answers: dict) -> Job:
    import ansible_runner  # requirements-dev.txt pins it

    extra = launch_vars(template, {k: (v(ctx) if callable(v) else v) for k, v in answers.items()})
    cmdline = " ".join((["--check"] if template["job_type"] == "check" else []) + (["--diff"] if template.get("diff_mode") else []))
    job = Job(template, local_playbook(template["playbook"]), extra, cmdline)
    ident = re.sub(r"[^a-z0-9]+", "-", template["name"].lower()).strip("-")
    (ctx["private"] / "jobs" / ident).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = ansible_runner.run(
        # A private data dir per job, as AWX makes one (env/extravars is the job's own: runs side by
        # side must not share it); the project folder is the one copy.
        private_data_dir=str(ctx["private"] / "jobs" / ident),
        project_dir=str(ctx["project"]),
        artifact_dir=str(OUTPUT / "artifacts"),
        ident=ident,
        playbook=job.playbook,
        inventory=str(ctx["project"] / "inventories" / "local"),
        extravars=extra,
        cmdline=cmdline or None,
        # The project's own ansible.cfg (its vault_identity_list holds the local vault's password
        # file, which AWX's vault credential stands in for on staging and production).
        envvars={"ANSIBLE_CONFIG": str(ctx["project"] / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        settings={"job_timeout": JOB_TIMEOUT, "suppress_ansible_output": True},
        quiet=True,
        event_handler=job.event,
        rotate_artifacts=0,
    )
    job.seconds = time.monotonic() - started
    job.status, job.rc = result.status, result.rc
    stdout = OUTPUT / "artifacts" / ident / "stdout"
    job.stdout = stdout.read_text(errors="replace") if stdout.exists() else ""
    return job


def expectation_errors(step: Step, job: Job) -> list[str]:
    errors = []
    if job.status != "successful" or job.rc != 0:
        errors.append(f"status {job.status}, rc {job.rc}")
    if job.failed_tasks:
        errors.append("failed: " + "; ".join(job.failed_tasks[:5]))
    if not job.stats:
        errors.append("no playbook_on_stats event (the playbook did not finish)")
    changed = job.total("changed")
    unexpected = [t for t in job.changed_tasks if t.split(": ", 1)[-1] not in step.allow_changed]
    if step.expect in ("noop", "no-hosts") and (unexpected or changed > len(job.changed_tasks)):
        errors.append(f"expected changed=0, got {changed}: " + "; ".join(job.changed_tasks[:10]))
    elif step.expect == "changes" and changed == 0:
        errors.append("expected changes, got changed=0")
    elif isinstance(step.expect, int) and changed != step.expect:
        errors.append(f"expected changed={step.expect}, got {changed}: " + "; ".join(job.changed_tasks[:10]))
    return errors


def vault_values() -> dict[str, str]:
    """The local vault's values (throwaway secrets), to prove no job prints one."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = (ROOT / "inventories" / "local" / ".vault-password").read_bytes().strip()
    text = VaultLib([("local", VaultSecret(password))]).decrypt((ROOT / "inventories" / "local" / "group_vars" / "all" / "vault.yml").read_bytes())
    values = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, str) and len(value) >= 8:
            values[prefix] = value
    walk("", yaml.safe_load(text))
    return values


def run_step(ctx: Context, templates: dict, step: Step, lock: threading.Lock) -> Job | None:
    template = templates[step.template]
    try:
        if step.before:
            step.before(ctx)
        job = run_job(ctx, template, step.answers)
        errors = expectation_errors(step, job)
        if not errors and step.verify:
            step.verify(ctx, job)
    except Failed as exc:
        errors, job = [str(exc)], locals().get("job")
    with lock:
        ctx["jobs"].append((step, job, errors))
        answers = {k: (job.extra_vars.get(k) if job else "?") for k in step.answers}
        mode = template["job_type"] + (" --diff" if template.get("diff_mode") else "")
        where = f"{job.playbook} ({mode}{', answers ' + json.dumps(answers) if answers else ''})" if job else ""
        if errors:
            log(f"FAIL {template['name']}: {where}: {'; '.join(errors)}{f' ({job.seconds:.1f} s)' if job else ''}")
            if job and job.stdout:
                tail = "\n".join(job.stdout.splitlines()[-25:])
                print(tail, flush=True)
        else:
            extra = f"; its plays matched no host: {', '.join(job.no_hosts_plays)}" if job.no_hosts_plays else ""
            log(f"ok   {template['name']}: {where}: {job.status} in {job.seconds:.1f} s, {job.recap()}{extra}")
    return job


def templates_of(environment: str) -> dict[str, dict]:
    data = yaml.safe_load((ROOT / "awx" / "templates.yml").read_text())
    prefix = f"{environment} | "
    return {t["name"][len(prefix):]: t for t in data["controller_templates"] if t["name"].startswith(prefix)}


def plan_errors(templates: dict) -> list[str]:
    planned = [s.template for s in READ_ONLY + READ_ONLY_AFTER_DUMP + CHANGING]
    errors = [f"'{n}' is in the plan twice" for n in sorted({n for n in planned if planned.count(n) > 1})]
    errors += [f"'{n}' is planned but awx/templates.yml has no template '{ENVIRONMENT} | {n}'"
               for n in sorted((set(planned) | set(NOT_RUN)) - set(templates))]
    errors += [f"'{ENVIRONMENT} | {n}' is neither run nor listed in NOT_RUN with a reason (tests/local/e2e-awx.py)"
               for n in sorted(set(templates) - set(planned) - set(NOT_RUN))]
    errors += [f"'{n}' is both run and listed in NOT_RUN" for n in sorted(set(planned) & set(NOT_RUN))]
    return errors


# --- one template in the execution environment ------------------------------------------------------
EE_TEMPLATE = "service status"


def run_in_ee(image: str) -> int:
    """`ansible-runner run --process-isolation --process-isolation-executable docker --container-image
    IMAGE`: the job runs inside the execution environment, as AWX runs it. The private data dir is
    laid out as AWX lays it out: project/ (the project copy), inventory/ (runner mounts it as
    /runner/inventory), env/extravars (the launch's variables), env/envvars. The local nodes are
    containers: the job reaches them through the Docker socket, mounted into the job's container,
    with community.docker.docker_api (the Docker API from Python; the image has no docker CLI, which
    the inventory's docker connection would run): inventory/zz-execution-environment.yml sets it per
    host, which takes precedence over group_vars/all. On staging and production the nodes are reached
    over SSH (openssh-client from ee/bindep.txt)."""
    archive = os.environ.get("SCIOPS_NMPI_ARCHIVE", "")
    if not archive or not Path(archive).is_file():
        log("FAIL: SCIOPS_NMPI_ARCHIVE is not set to a file (make sets it)")
        return 1
    template = templates_of(ENVIRONMENT)[EE_TEMPLATE]
    step = next(s for s in READ_ONLY if s.template == EE_TEMPLATE)
    ctx = Context()
    private = Path(tempfile.mkdtemp(prefix="sciops-awx-ee."))
    started = time.monotonic()
    try:
        project_copy(private / "project")
        shutil.copytree(private / "project" / "inventories" / "local", private / "inventory", symlinks=True)
        hosts = yaml.safe_load((private / "inventory" / "hosts.yml").read_text())

        def names(group):
            return list((group.get("hosts") or {})) + [h for child in (group.get("children") or {}).values() for h in names(child or {})]
        (private / "inventory" / "zz-execution-environment.yml").write_text(yaml.safe_dump(
            {"all": {"hosts": {h: {"ansible_connection": "community.docker.docker_api"} for h in sorted(set(names(hosts["all"])))}}}))
        extra = launch_vars(template, {k: (v(ctx) if callable(v) else v) for k, v in step.answers.items()})
        (private / "env").mkdir()
        (private / "env" / "extravars").write_text(json.dumps(extra))
        # AWX reads the project's collections_path (ansible.cfg: ./collections, the link to the project
        # itself) and appends the execution environment's own paths, where the image's collections are.
        (private / "env" / "envvars").write_text(json.dumps({
            "SCIOPS_NMPI_ARCHIVE": archive, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_COLLECTIONS_PATH": "/runner/project/collections:~/.ansible/collections:/usr/share/ansible/collections"}))
        ident = "ee-" + re.sub(r"[^a-z0-9]+", "-", EE_TEMPLATE)
        argv = [str(Path(sys.executable).parent / "ansible-runner"), "run", str(private), "--ident", ident,
                "-p", local_playbook(template["playbook"]),
                "--process-isolation", "--process-isolation-executable", "docker", "--container-image", image,
                "--container-volume-mount", "/var/run/docker.sock:/var/run/docker.sock",
                "--container-volume-mount", f"{archive}:{archive}:ro"]
        if template["job_type"] == "check" or template.get("diff_mode"):
            argv += ["--cmdline=" + " ".join((["--check"] if template["job_type"] == "check" else []) + (["--diff"] if template.get("diff_mode") else []))]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False)
        artifacts = private / "artifacts" / ident
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / f"{ident}.stdout").write_text(done.stdout + done.stderr)
        status = (artifacts / "status").read_text().strip() if (artifacts / "status").exists() else "none"
        rc = (artifacts / "rc").read_text().strip() if (artifacts / "rc").exists() else "none"
        command = json.loads((artifacts / "command").read_text()).get("command", []) if (artifacts / "command").exists() else []
        job = Job(template, local_playbook(template["playbook"]), extra, "")
        for path in sorted((artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0])):
            job.event(json.loads(path.read_text()))
        job.status, job.rc, job.stdout = status, int(rc) if rc.isdigit() else None, done.stdout
        errors = expectation_errors(step, job)
        if command[:2] != ["docker", "run"] or image not in command:
            errors.append(f"the job did not run in a container of {image}: {' '.join(command[:12])}")
        if not any("nmpi_queue" in str(m) and "local-app1" in str(m) for m in job.messages):
            errors.append("its status table does not show nmpi_queue on local-app1")
        leaked = sorted(name for name, value in vault_values().items() if value in done.stdout)
        if leaked:
            errors.append(f"its output holds the value of {', '.join(leaked)}")
        took = time.monotonic() - started
        if errors:
            log(f"FAIL {template['name']} in {image}: {'; '.join(errors)}")
            print("\n".join((done.stdout + done.stderr).splitlines()[-30:]), flush=True)
            return 1
        log(f"ok   {template['name']} in the execution environment {image} (ansible-runner --process-isolation, "
            f"docker run ... {image} {' '.join(command[command.index(image) + 1:][:1])} ...): {job.playbook} "
            f"({template['job_type']}{' --diff' if template.get('diff_mode') else ''}, answers {json.dumps(step.answers)}): "
            f"{job.status} in {took:.1f} s, {job.recap()}")
        return 0
    finally:
        shutil.rmtree(private, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--only", action="append", default=[], help="run only this template (name after 'staging | ')")
    parser.add_argument("--ee", metavar="IMAGE", help=f"run '{EE_TEMPLATE}' in this execution environment image")
    args = parser.parse_args(argv)
    if args.ee:
        return run_in_ee(args.ee)

    templates = templates_of(ENVIRONMENT)
    errors = plan_errors(templates)
    if errors:
        for error in errors:
            log(f"FAIL plan: {error}")
        return 1
    if args.list:
        for group, steps in (("two at a time, changing nothing", READ_ONLY + READ_ONLY_AFTER_DUMP),
                             ("lane 1 (front door, colours), beside lane 2", LANE_FRONT), ("lane 2", LANE_BACK),
                             ("then alone", LAST)):
            print(f"{group}:")
            for step in steps:
                print(f"  {ENVIRONMENT} | {step.template}: expect {step.expect}")
        print("not run:")
        for name, why in NOT_RUN.items():
            print(f"  {ENVIRONMENT} | {name}: {why}")
        return 0
    if not os.environ.get("SCIOPS_NMPI_ARCHIVE"):
        log("FAIL: SCIOPS_NMPI_ARCHIVE is not set (make sets it)")
        return 1

    started = time.monotonic()
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    private = Path(tempfile.mkdtemp(prefix="sciops-awx-runner."))
    ctx = Context(private=private, project=private / "project", jobs=[])
    project_copy(ctx["project"])
    lock = threading.Lock()
    only = set(args.only)
    unknown = only - set(templates)
    if unknown:
        log(f"FAIL: no template {sorted(unknown)}")
        return 1

    def chosen(steps):
        return [s for s in steps if not only or s.template in only]

    failures = 0
    try:
        if chosen(READ_ONLY + READ_ONLY_AFTER_DUMP):
            before_read_only(ctx)
            trees = node_trees()
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda s: run_step(ctx, templates, s, lock), chosen(READ_ONLY)))
                if "dump_file" in ctx or not only:
                    list(pool.map(lambda s: run_step(ctx, templates, s, lock), chosen(READ_ONLY_AFTER_DUMP)))
            after = node_trees()
            changed_nodes = sorted(n for n in trees if trees[n] != after.get(n))
            if changed_nodes:
                failures += 1
                log(f"FAIL the read-only and check-mode templates changed files on {', '.join(changed_nodes)}")
            else:
                log(f"the read-only and check-mode templates left every node's managed files as they were ({len(trees)} nodes "
                    f"compared); {time.monotonic() - started:.0f} s so far")
        if chosen(CHANGING) and "splash_live" not in ctx:
            before_read_only(ctx)
        with ThreadPoolExecutor(max_workers=2) as pool:
            lanes = [pool.submit(lambda steps: [run_step(ctx, templates, s, lock) for s in steps], chosen(lane))
                     for lane in (LANE_FRONT, LANE_BACK)]
            for lane in lanes:
                lane.result()
        log(f"the two lanes of changing templates done; {time.monotonic() - started:.0f} s so far")
        for step in chosen(LAST):
            if step.template == "database restore" and "dump_file" not in ctx:
                run_step(ctx, templates, next(s for s in READ_ONLY if s.template == "database dump"), lock)
            run_step(ctx, templates, step, lock)
    finally:
        shutil.rmtree(private, ignore_errors=True)

    secrets = vault_values()
    for step, job, errors in ctx["jobs"]:
        leaked = sorted(name for name, value in secrets.items() if job and value in job.stdout)
        if leaked:
            errors.append(f"its output holds the value of {', '.join(leaked)}")
            log(f"FAIL {job.name}: its output holds the value of {', '.join(leaked)} (local vault)")
    failures += sum(1 for _, _, errors in ctx["jobs"] if errors)
    ran = len(ctx["jobs"])
    log(f"summary: {ran - sum(1 for _, _, e in ctx['jobs'] if e)} of {ran} templates' jobs successful as expected "
        f"through ansible-runner in {time.monotonic() - started:.0f} s; no vault value in their output"
        if not failures else f"summary: {failures} failure(s) over {ran} jobs in {time.monotonic() - started:.0f} s")
    for name, why in NOT_RUN.items():
        if not only or name in only:
            log(f"not run: {ENVIRONMENT} | {name}: {why}")
    for step, job, _ in ctx["jobs"]:
        if step.template in LOCAL_DIFFERENCES:
            log(f"ran, unlike on {ENVIRONMENT}: {ENVIRONMENT} | {step.template}: {LOCAL_DIFFERENCES[step.template]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
