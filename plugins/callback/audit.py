# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: audit
type: aggregate
author:
  - sciops.platform maintainers (@sciops)
short_description: One audit record per playbook run (who, what, where, when, result), with no secret in it
description:
  - Writes one record for every C(ansible-playbook) run, from the command line, CI or AWX, the way the
    platform's old deploy script logged every action to C(deploy.log).
  - "The record says who ran it (the local user, the CI actor, the AWX user, job, template and schedule), which
    playbooks, which inventory and environment (C(sciops_environment) of the first host of each play), when (start
    and end, UTC), the result (C(ok), C(failed), C(unreachable), or C(aborted) when the run ended before its recap),
    the exit status as far as a callback can know it (0, 2 failed hosts, 4 unreachable hosts), the per-host counts
    (ok, changed, failed, unreachable, skipped, rescued, ignored) and the changed total, check and diff mode, the
    limit and tags, and the git commit of the checkout."
  - No variable value is recorded, only the names of the extra variables; task results, arguments and
    vault-encrypted values never enter the record.
  - The record is one JSON line appended to O(log_path) under an exclusive lock (concurrent runs give intact
    lines), and optionally sent to syslog (journald) and to an HTTP endpoint, so a team's runs land in one place.
  - A sink that fails is reported as a warning on the run's output; it does not fail the run.
requirements:
  - enabled in C(callbacks_enabled) (the project's C(ansible.cfg) enables it)
options:
  log_path:
    description:
      - The JSON Lines file the record is appended to (created with mode 0640, its folder with 0750).
      - When not set, C(logs/audit.jsonl) beside the C(ansible.cfg) in use (the project's checkout), or
        C(~/.ansible/sciops-audit.jsonl) when no configuration file is in use.
      - The value C(-) turns the file off (a syslog or HTTP sink only).
    type: str
    env:
      - name: SCIOPS_AUDIT_LOG
    ini:
      - section: callback_sciops_audit
        key: log_path
  syslog:
    description: Also send the record to the local syslog (journald on systemd machines), tag C(sciops-audit).
    type: bool
    default: false
    env:
      - name: SCIOPS_AUDIT_SYSLOG
    ini:
      - section: callback_sciops_audit
        key: syslog
  syslog_facility:
    description: The syslog facility of O(syslog).
    type: str
    default: user
    choices: [user, daemon, auth, local0, local1, local2, local3, local4, local5, local6, local7]
    env:
      - name: SCIOPS_AUDIT_SYSLOG_FACILITY
    ini:
      - section: callback_sciops_audit
        key: syslog_facility
  url:
    description:
      - Also POST the record as JSON (C(Content-Type application/json)) to this http or https URL, for example a
        team's log collector. A reply outside 2xx is reported as a warning.
    type: str
    env:
      - name: SCIOPS_AUDIT_URL
    ini:
      - section: callback_sciops_audit
        key: url
  url_token:
    description:
      - Bearer token sent with O(url) (C(Authorization Bearer ...)). Give it in the environment (an AWX credential
        can inject it); it is never printed.
    type: str
    env:
      - name: SCIOPS_AUDIT_TOKEN
  url_timeout:
    description: Seconds to wait for O(url).
    type: int
    default: 10
    env:
      - name: SCIOPS_AUDIT_URL_TIMEOUT
    ini:
      - section: callback_sciops_audit
        key: url_timeout
  display:
    description:
      - Also print the record as one line starting with C(AUDIT) at the end of the run, so it is kept with the job's
        output (AWX keeps every job's output; the file in a job's container is discarded with it).
    type: bool
    default: false
    env:
      - name: SCIOPS_AUDIT_DISPLAY
    ini:
      - section: callback_sciops_audit
        key: display
"""

import atexit
import datetime
import errno
import fcntl
import getpass
import json
import os
import socket
import subprocess
import syslog
import uuid

from ansible import constants as C
from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version

RECORD_VERSION = 1
COUNTERS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
# Variables AWX adds to every job (awx_* and their tower_* twins): the ones recorded, by their awx_ name.
AWX_FIELDS = (
    ("job_id", "awx_job_id"),
    ("job_launch_type", "awx_job_launch_type"),
    ("job_template_id", "awx_job_template_id"),
    ("job_template_name", "awx_job_template_name"),
    ("user_id", "awx_user_id"),
    ("user_name", "awx_user_name"),
    ("schedule_name", "awx_schedule_name"),
    ("workflow_job_id", "awx_workflow_job_id"),
    ("workflow_job_name", "awx_workflow_job_name"),
    ("inventory_name", "awx_inventory_name"),
    ("project_revision", "awx_project_revision"),
    ("execution_node", "awx_execution_node"),
)
# Who and what, when the run comes from a CI job (name of the forge: its environment variables).
CI_FIELDS = {
    "github": ("GITHUB_ACTIONS", {"actor": "GITHUB_ACTOR", "repository": "GITHUB_REPOSITORY", "ref": "GITHUB_REF",
                                  "sha": "GITHUB_SHA", "run_id": "GITHUB_RUN_ID", "workflow": "GITHUB_WORKFLOW"}),
    "gitlab": ("GITLAB_CI", {"actor": "GITLAB_USER_LOGIN", "repository": "CI_PROJECT_PATH", "ref": "CI_COMMIT_REF_NAME",
                             "sha": "CI_COMMIT_SHA", "run_id": "CI_PIPELINE_ID", "workflow": "CI_JOB_NAME"}),
}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def plain(value):
    """A JSON-safe copy of an AWX metadata value (ints stay ints, anything else becomes text)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return to_text(value)


def exit_status(totals):
    """ansible-playbook's exit status as the recap shows it: 4 with unreachable hosts, 2 with failed ones, else 0."""
    if totals["unreachable"]:
        return 4
    if totals["failed"]:
        return 2
    return 0


def result_word(status):
    return {0: "ok", 2: "failed", 4: "unreachable"}.get(status, "aborted")


def append_line(path, line):
    """Append one line under an exclusive lock, in one write, so concurrent runs never interleave."""
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, mode=0o750, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = (line + "\n").encode("utf-8")
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def git_commit(folder):
    """The checkout's commit and whether it has uncommitted changes; None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=False)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return None


class CallbackModule(CallbackBase):
    """Writes one audit record per playbook run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sciops.platform.audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = os.getpid()
        self._start = None
        self._playbooks = []
        self._stats_seen = 0
        self._stats = None
        self._environments = set()
        self._extra_var_names = set()
        self._awx = {}
        self._written = False
        self._hosts_checked = set()

    # --- what the run is --------------------------------------------------------------------------
    @staticmethod
    def _project_root():
        if C.CONFIG_FILE:
            return os.path.dirname(os.path.abspath(C.CONFIG_FILE))
        return os.getcwd()

    def _log_path(self):
        path = self.get_option("log_path")
        if path == "-":
            return None
        if path:
            return os.path.abspath(os.path.expanduser(path))
        if C.CONFIG_FILE:
            return os.path.join(self._project_root(), "logs", "audit.jsonl")
        return os.path.expanduser("~/.ansible/sciops-audit.jsonl")

    def _relative(self, path):
        full = os.path.abspath(path)
        root = self._project_root()
        return os.path.relpath(full, root) if full.startswith(root + os.sep) else full

    @staticmethod
    def _expected_recaps():
        """ansible-playbook sends one recap per playbook file; the ad hoc command (when bin_ansible_callbacks
        lets it load this callback) one for its single task."""
        args = context.CLIARGS.get("args")
        return len(args) if isinstance(args, (list, tuple)) else 1

    @staticmethod
    def _listing_only():
        return any(context.CLIARGS.get(flag) for flag in ("syntax", "listhosts", "listtasks", "listtags"))

    def v2_playbook_on_start(self, playbook):
        if self._listing_only():
            return
        if self._start is None:
            self._start = utc_now()
            atexit.register(self._at_exit)
        if context.CLIARGS.get("module_name") and not isinstance(context.CLIARGS.get("args"), (list, tuple)):
            # The ad hoc command: its module's name, never its arguments (they may hold a secret).
            self._playbooks.append("(ad hoc) %s" % to_text(context.CLIARGS["module_name"]))
        else:
            self._playbooks.append(self._relative(to_text(playbook._file_name)))

    def v2_playbook_on_play_start(self, play):
        if self._start is None:
            return
        manager = play.get_variable_manager()
        if manager is None:
            return
        extra = manager.extra_vars or {}
        for key, name in AWX_FIELDS:
            value = extra.get(name, extra.get("tower_" + name[len("awx_"):]))
            if value is not None and value != "":
                self._awx[key] = plain(value)
        self._extra_var_names.update(to_text(name) for name in extra
                                     if not to_text(name).startswith(("awx_", "tower_")))
        self._read_environment(manager, play)

    def _read_environment(self, manager, play):
        """sciops_environment of the play's first host (a plain name, never a secret)."""
        inventory = getattr(manager, "_inventory", None)
        if inventory is None:
            return
        try:
            hosts = inventory.get_hosts(play.hosts)
        except Exception:  # pylint: disable=broad-exception-caught  # a pattern the play itself will report
            return
        for host in hosts[:1]:
            if host.name in self._hosts_checked:
                continue
            self._hosts_checked.add(host.name)
            try:
                value = manager.get_vars(host=host, include_hostvars=False).get("sciops_environment")
            except Exception:  # pylint: disable=broad-exception-caught  # the run reports unreadable variables itself
                continue
            if isinstance(value, str) and value and "{" not in value:
                self._environments.add(to_text(value))

    def v2_playbook_on_stats(self, stats):
        if self._start is None:
            return
        self._stats = stats
        self._stats_seen += 1
        # ansible-playbook sends the recap once per playbook file: the run ends with the last one.
        if self._stats_seen >= self._expected_recaps():
            self._finish(early=False)

    def _at_exit(self):
        # Only the process that started the run (not a forked worker), and only when the last recap did not
        # come: the run stopped early, after failed hosts (ansible-playbook skips the playbooks after one that
        # failed), or on an error or an interrupt (then the result is "aborted").
        if os.getpid() == self._pid and not self._written:
            self._finish(early=True)

    # --- the record -------------------------------------------------------------------------------
    def _hosts(self):
        hosts = {}
        if self._stats is None:
            return hosts
        for name in sorted(self._stats.processed):
            summary = self._stats.summarize(name)
            hosts[to_text(name)] = {
                "ok": summary.get("ok", 0), "changed": summary.get("changed", 0), "failed": summary.get("failures", 0),
                "unreachable": summary.get("unreachable", 0), "skipped": summary.get("skipped", 0),
                "rescued": summary.get("rescued", 0), "ignored": summary.get("ignored", 0),
            }
        return hosts

    def _who(self):
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        who = {"user": user, "controller": socket.gethostname()}
        if os.environ.get("SUDO_USER"):
            who["sudo_user"] = os.environ["SUDO_USER"]
        return who

    @staticmethod
    def _ci():
        for forge, (flag, fields) in CI_FIELDS.items():
            if os.environ.get(flag):
                found = {"forge": forge}
                found.update({key: os.environ[name] for key, name in fields.items() if os.environ.get(name)})
                return found
        return None

    def record(self, early=False):
        hosts = self._hosts()
        totals = {key: sum(host[key] for host in hosts.values()) for key in COUNTERS}
        status = exit_status(totals)
        if early and status == 0:
            status = None  # it stopped without a failed host: an error or an interrupt
        end = utc_now()
        args = context.CLIARGS
        record = {
            "record": "sciops.platform.audit",
            "version": RECORD_VERSION,
            "run_id": str(uuid.uuid4()),
            "start": iso(self._start),
            "end": iso(end),
            "duration_s": round((end - self._start).total_seconds(), 3),
            "who": self._who(),
            "awx": dict(sorted(self._awx.items())) or None,
            "ci": self._ci(),
            "playbooks": self._playbooks,
            "inventory": [self._relative(source) if os.path.exists(source) else source
                          for source in (to_text(s) for s in (args.get("inventory") or ()))],
            "environment": sorted(self._environments),
            "limit": args.get("subset") or (to_text(args["args"]) if isinstance(args.get("args"), str) else None),
            "tags": sorted(t for t in (args.get("tags") or ()) if t != "all"),
            "skip_tags": sorted(args.get("skip_tags") or ()),
            "check_mode": bool(args.get("check")),
            "diff_mode": bool(args.get("diff")),
            "extra_vars": sorted(self._extra_var_names),
            "result": result_word(status),
            "exit_status": status,
            "changed": totals["changed"],
            "totals": totals,
            "hosts": hosts,
            "git": git_commit(self._project_root()),
            "ansible": ansible_version,
        }
        if record["git"] is None and self._awx.get("project_revision"):
            record["git"] = {"commit": self._awx["project_revision"], "dirty": None}
        return record

    def _finish(self, early):
        if self._written:
            return
        self._written = True
        line = json.dumps(self.record(early), sort_keys=False, separators=(",", ":"))
        path = self._log_path()
        if path:
            try:
                append_line(path, line)
            except OSError as exc:
                self._display.warning("audit: could not append the run's record to %s: %s" % (path, exc.strerror or errno.errorcode.get(exc.errno, exc)))
            else:
                self._display.vv("audit: run recorded in %s" % path)
        if self.get_option("syslog"):
            self._send_syslog(line)
        if self.get_option("url"):
            self._send_http(line)
        if self.get_option("display"):
            self._display.display("AUDIT " + line)

    def _send_syslog(self, line):
        facility = getattr(syslog, "LOG_" + self.get_option("syslog_facility").upper())
        try:
            syslog.openlog("sciops-audit", syslog.LOG_PID, facility)
            syslog.syslog(syslog.LOG_NOTICE, line)
            syslog.closelog()
        except OSError as exc:
            self._display.warning("audit: could not send the record to syslog: %s" % exc)

    def _send_http(self, line):
        url = self.get_option("url")
        parsed = urlparse(url)
        where = "%s://%s%s" % (parsed.scheme, parsed.hostname or "", parsed.path)  # never the query or credentials
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            self._display.warning("audit: url must be an http or https URL; the record was not sent to %s" % where)
            return
        headers = {"Content-Type": "application/json"}
        token = self.get_option("url_token")
        if token:
            headers["Authorization"] = "Bearer %s" % token
        try:
            response = open_url(url, data=line.encode("utf-8"), headers=headers, method="POST",
                                timeout=self.get_option("url_timeout"), follow_redirects="none")
            response.read()
        except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure of the sink is one warning
            code = getattr(exc, "code", None)
            reason = "HTTP %s" % code if code else type(exc).__name__
            self._display.warning("audit: could not send the record to %s: %s" % (where, reason))
