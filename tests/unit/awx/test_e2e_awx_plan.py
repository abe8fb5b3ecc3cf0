"""tests/local/e2e-awx.py offline: its plan covers every template of one environment (each run,
or listed as not run with a reason), and it merges a launch's variables as AWX does (template
extra_vars, then the survey's valid defaults, then the answers; AWX's own variables), refusing
what AWX's launch would refuse. The runs themselves need the local environment (make local-e2e)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("e2e_awx", ROOT / "tests" / "local" / "e2e-awx.py")
e2e_awx = importlib.util.module_from_spec(spec)
sys.modules["e2e_awx"] = e2e_awx
spec.loader.exec_module(e2e_awx)

TEMPLATES = e2e_awx.templates_of("staging")
STEPS = e2e_awx.READ_ONLY + e2e_awx.READ_ONLY_AFTER_DUMP + e2e_awx.CHANGING
CTX = e2e_awx.Context(splash_live="blue", nmpi_live="green", forum_backup="f-2026-12-07-000000-v20241126124358.tar.gz",
                      dump_file="backups/nmpi.dump")


def test_the_plan_covers_every_template_once():
    assert len(TEMPLATES) == 35
    assert e2e_awx.plan_errors(TEMPLATES) == []
    assert all(reason.strip() for reason in e2e_awx.NOT_RUN.values())


def test_every_local_difference_names_a_planned_template():
    planned = {s.template for s in STEPS}
    assert set(e2e_awx.LOCAL_DIFFERENCES) <= planned


def test_a_template_missing_from_the_plan_is_an_error():
    extra = dict(TEMPLATES, **{"new operation": dict(TEMPLATES["site"], name="staging | new operation")})
    assert e2e_awx.plan_errors(extra) == [
        "'staging | new operation' is neither run nor listed in NOT_RUN with a reason (tests/local/e2e-awx.py)"]


@pytest.mark.parametrize("step", STEPS, ids=[s.template for s in STEPS])
def test_every_planned_launch_is_one_awx_accepts(step):
    template = TEMPLATES[step.template]
    extra = e2e_awx.launch_vars(template, {k: (v(CTX) if callable(v) else v) for k, v in step.answers.items()})
    assert dict(template["extra_vars"]) == {k: extra[k] for k in template["extra_vars"]}
    assert extra["awx_job_template_name"] == template["name"] and extra["tower_job_id"] == 1
    for question in (template.get("survey_spec") or {}).get("spec", []):
        if question.get("required"):
            assert extra.get(question["variable"]) not in (None, ""), question["variable"]


def test_the_survey_defaults_merge_as_awx_merges_them():
    logs = TEMPLATES["service logs"]
    extra = e2e_awx.launch_vars(logs, {"service": "nmpi_queue", "colour": "blue"})
    assert extra["lines"] == 500 and isinstance(extra["lines"], int)  # an integer question's default, typed
    restore = TEMPLATES["database restore"]
    extra = e2e_awx.launch_vars(restore, {"db_dump_file": "backups/x.dump"})
    assert extra["db_restore_overwrite"] == "false" and extra["db_name"] == "nmpi"  # defaults as strings
    # the template's fixed variables and the answers: answers last
    extra = e2e_awx.launch_vars(TEMPLATES["remove nodes"], {"provision_hosts": "local-forum1"})
    assert extra["provision_state"] == "absent" and extra["provision_confirm_absent"] is True


@pytest.mark.parametrize("answers, message", [
    ({}, "'service' value missing"),  # a multiple choice's empty default is not a default
    ({"service": "nmpi"}, "Value nmpi for 'service' expected to be one of"),
    ({"service": "splash", "extra": 1}, "answers for questions its survey does not ask: ['extra']"),
])
def test_a_launch_awx_would_refuse_is_refused(answers, message):
    with pytest.raises(e2e_awx.Failed, match=message.replace("(", r"\(").replace("[", r"\[")):
        e2e_awx.launch_vars(TEMPLATES["service status"], answers)


def test_an_integer_answer_must_be_an_integer_and_a_required_text_must_not_be_empty():
    logs = TEMPLATES["service logs"]
    with pytest.raises(e2e_awx.Failed, match="expected to be an integer"):
        e2e_awx.launch_vars(logs, {"service": "nmpi_queue", "colour": "blue", "lines": "500"})
    with pytest.raises(e2e_awx.Failed, match="'provision_hosts' is required and has no answer"):
        e2e_awx.launch_vars(TEMPLATES["remove nodes"], {})


def test_the_environment_wrapper_runs_as_local():
    assert e2e_awx.local_playbook("playbooks/staging.yml") == "playbooks/local.yml"
    assert e2e_awx.local_playbook("playbooks/db_dump.yml") == "playbooks/db_dump.yml"
