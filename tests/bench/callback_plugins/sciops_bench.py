# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark figures of one ansible-playbook run, per role, as JSON (tests/bench/*.sh only)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: sciops_bench
type: aggregate
short_description: Per-role wall time, task and result counts of a run, written as JSON
description:
  - For each role (the task's role as its FQCN, or C((playbook)) for a play's own tasks), the wall
    seconds of its tasks (each task from its start to the next task's start, as
    ansible.posix.profile_tasks measures), the number of tasks started, the host-task results,
    how many of them changed, failed, were skipped or unreachable; the whole run's wall time and
    the PLAY RECAP totals.
  - Only the benchmark scripts under tests/bench/ enable it (ANSIBLE_CALLBACK_PLUGINS and
    ANSIBLE_CALLBACKS_ENABLED); it works with the linear strategy and Mitogen's mitogen_linear.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=sciops_bench
options:
  output:
    description: File the JSON is written to at the end of the run (nothing is written when empty).
    type: path
    default: ''
    env:
      - name: SCIOPS_BENCH_JSON
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

PLAYBOOK = "(playbook)"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sciops_bench"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._t0 = time.time()
        self._playbook = ""
        self._roles = {}
        self._current = None  # (role, started)
        self._task_roles = {}  # task uuid -> role, for the results

    @staticmethod
    def _role_of(task):
        role = getattr(task, "_role", None)
        return role.get_name() if role is not None else PLAYBOOK

    def _entry(self, role):
        return self._roles.setdefault(role, {
            "wall_s": 0.0, "tasks": 0, "results": 0, "changed": 0, "ok": 0, "failed": 0,
            "skipped": 0, "unreachable": 0, "changed_tasks": [],
        })

    def _close_current(self, now):
        if self._current is not None:
            role, started = self._current
            self._entry(role)["wall_s"] += now - started
            self._current = None

    def _start(self, task):
        now = time.time()
        self._close_current(now)
        role = self._role_of(task)
        self._task_roles[task._uuid] = role
        self._entry(role)["tasks"] += 1
        self._current = (role, now)

    def _result(self, result, kind):
        task = result._task
        role = self._task_roles.get(task._uuid) or self._role_of(task)
        entry = self._entry(role)
        entry["results"] += 1
        entry[kind] += 1
        if kind == "ok" and result._result.get("changed", False):
            entry["changed"] += 1
            entry["changed_tasks"].append(f"{result._host.get_name()}: {task.get_name()}")

    # --- events -------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self._t0 = time.time()
        self._playbook = os.path.relpath(playbook._file_name) if getattr(playbook, "_file_name", None) else ""

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_runner_on_ok(self, result, **kwargs):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close_current(now)
        keys = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
        hosts = {host: {k: stats.summarize(host).get(k, 0) for k in keys} for host in sorted(stats.processed)}
        totals = {k: sum(h[k] for h in hosts.values()) for k in keys}
        out = {
            "playbook": self._playbook,
            "wall_s": round(now - self._t0, 3),
            "tasks": sum(r["tasks"] for r in self._roles.values()),
            "roles": {name: dict(r, wall_s=round(r["wall_s"], 3)) for name, r in self._roles.items()},
            "recap": {"hosts": hosts, "totals": totals},
        }
        path = self.get_option("output")
        if not path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=2)  # roles in the order they first ran
            handle.write("\n")
