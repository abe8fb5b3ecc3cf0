"""Offline checks of the AWX data in awx/: the schema, the generated templates, the playbooks and
survey variables they name, the credentials (no secret in the repository) and the schedules."""
from __future__ import annotations

import importlib.util
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.servers.awx import next_runs, playbooks_of, rrule_error, survey_error

ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENTS = ("staging", "production")
# Playbooks of playbooks/ that get no job template, and why.
NO_TEMPLATE = {
    "validate.yml": "imported first by every playbook (the input checks)",
    "summary.yml": "a part of site.yml (what runs where), imported at its end",
    "service_target.yml": "a part of the service playbooks (finds the service), imported after the validation",
    "local.yml": "the local environment only (docker nodes on the machine that runs it)",
    "acme_test_ca.yml": "the local ACME test CA (local environment and tests only)",
    "site.yml": "run through the environment wrappers (staging.yml, production.yml), which refuse another inventory",
    "awx_configure.yml": "configures AWX itself (from a workstation or CI, with the controller's credentials)",
}
# Operations that destroy or replace something: each has a check-mode twin.
DESTRUCTIVE = ("remove nodes", "terminate service colour", "database restore", "forum restore")
# What each schedule does, as the comments of awx/controller.yml and README "AWX" say: a test of the
# next runs (UTC) computed from the rrules.
SCHEDULES = {
    "nightly drift check": {"template": "site drift check", "every": "day", "hour": 3},
    "weekly certificate check": {"template": "renew certificates (check)", "every": "monday", "hour": 6},
    "monthly forum restore drill": {"template": "forum restore drill", "every": "first sunday", "hour": 4},
}
MINUTE = {"staging": 0, "production": 15}


def _unsafe(loader, node):
    return loader.construct_scalar(node)


class Loader(yaml.SafeLoader):
    """The awx/ files carry Ansible's !unsafe tag (the credential types' injector templates)."""


Loader.add_constructor("!unsafe", _unsafe)


def load(name):
    return yaml.load((ROOT / "awx" / name).read_text(), Loader=Loader)


@pytest.fixture(scope="module")
def data():
    out = dict(load("controller.yml"))
    out.update(load("templates.yml"))
    return out


def generator():
    spec = importlib.util.spec_from_file_location("awx_templates", ROOT / "scripts" / "awx-templates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_fits_its_schema(data):
    schema = json.loads((ROOT / "tests" / "awx" / "controller.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in jsonschema.Draft7Validator(schema).iter_errors(data)]
    assert errors == []


def test_the_schema_refuses_a_misspelt_key(data):
    schema = json.loads((ROOT / "tests" / "awx" / "controller.schema.json").read_text())
    bad = json.loads(json.dumps(data))
    bad["controller_templates"][0]["survey_enabeld"] = True
    with pytest.raises(jsonschema.ValidationError, match="survey_enabeld"):
        jsonschema.validate(bad, schema)


def test_the_templates_file_is_what_the_generator_writes():
    assert (ROOT / "awx" / "templates.yml").read_text() == generator().render(), "awx/templates.yml is stale: run make awx-templates"


def test_names_are_unique_and_references_resolve(data):
    for key, items in data.items():
        names = [item["name"] for item in items]
        assert len(names) == len(set(names)), key
    names = {key: {item["name"] for item in items} for key, items in data.items()}
    types = names["controller_credential_types"] | {"Machine", "Vault", "Source Control"}
    for cred in data["controller_credentials"]:
        assert cred["credential_type"] in types and cred["organization"] in names["controller_organizations"]
    for source in data["controller_inventory_sources"]:
        assert source["inventory"] in names["controller_inventories"] and source["source_project"] in names["controller_projects"]
        assert (ROOT / source["source_path"] / "hosts.yml").is_file(), source["source_path"]
    for template in data["controller_templates"]:
        env = template["name"].split(" | ")[0]
        assert template["inventory"] == "sciops %s" % env
        assert template["project"] in names["controller_projects"]
        assert template["execution_environment"] in names["controller_execution_environments"]
        assert set(template["credentials"]) <= names["controller_credentials"], template["name"]
        assert all(c.startswith("sciops %s " % env) for c in template["credentials"]), "another environment's credential: " + template["name"]
        assert "sciops %s vault" % env in template["credentials"], template["name"]
    for schedule in data["controller_schedules"]:
        assert schedule["unified_job_template"] in names["controller_templates"], schedule["name"]


def test_every_template_playbook_exists_and_every_operation_playbook_has_a_template(data):
    offered = set(playbooks_of(ROOT))  # what AWX lists for the project
    used = {t["playbook"] for t in data["controller_templates"]}
    assert used <= offered, sorted(used - offered)
    everything = {p.name for p in (ROOT / "playbooks").glob("*.yml")}
    assert set(NO_TEMPLATE) <= everything
    for env in ENVIRONMENTS:
        env_used = {Path(t["playbook"]).name for t in data["controller_templates"] if t["name"].startswith(env + " | ")}
        missing = everything - env_used - set(NO_TEMPLATE) - {"%s.yml" % e for e in ENVIRONMENTS if e != env}
        assert missing == set(), "playbooks without a %s template (add them to awx/operations.yml, or to NO_TEMPLATE with why)" % env
        assert not env_used & set(NO_TEMPLATE)


def test_destructive_operations_have_a_check_mode_twin(data):
    templates = {t["name"]: t for t in data["controller_templates"]}
    for env in ENVIRONMENTS:
        for op in DESTRUCTIVE:
            real, check = templates["%s | %s" % (env, op)], templates["%s | %s (check)" % (env, op)]
            assert real["job_type"] == "run" and check["job_type"] == "check"
            assert {k: v for k, v in check.items() if k not in ("name", "job_type", "description")} == \
                {k: v for k, v in real.items() if k not in ("name", "job_type", "description")}
    assert templates["staging | remove nodes"]["extra_vars"] == {"provision_state": "absent", "provision_confirm_absent": True}


def playbook_closure(playbook):
    """The files a playbook runs: itself, what it imports, and the roles it names (sciops.platform.<role>)."""
    files, roles, todo = [], set(), [ROOT / playbook]
    while todo:
        path = todo.pop().resolve()
        if path in files:
            continue
        files.append(path)
        text = path.read_text()
        roles |= set(re.findall(r"sciops\.platform\.([a-z_]+)", text))
        for item in yaml.safe_load(text) or []:
            target = item.get("ansible.builtin.import_playbook") if isinstance(item, dict) else None
            if target:
                todo.append(path.parent / target)
    return files, {r for r in roles if (ROOT / "roles" / r).is_dir()}


def declared(roles):
    """{variable: (spec, origin)} of the playbooks' own spec and the given roles' specs."""
    out = {}
    for role in sorted(roles):
        path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
        if path.is_file():
            for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
                for name, spec in (entry.get("options") or {}).items():
                    out.setdefault(name, (spec, role))
    own = yaml.safe_load((ROOT / "playbooks" / "vars" / "playbook_argument_specs.yml").read_text())
    for name, spec in own["argument_specs"]["playbooks"]["options"].items():
        out[name] = (spec, "playbooks")
    return out


def test_every_survey_variable_is_declared_and_read_by_what_the_template_runs(data):
    for template in data["controller_templates"]:
        questions = template.get("survey_spec", {}).get("spec", [])
        assert survey_error(template["survey_spec"]) is None if questions else True
        files, roles = playbook_closure(template["playbook"])
        specs = declared(roles)
        texts = [f.read_text() for f in files] + [p.read_text() for r in roles for p in (ROOT / "roles" / r).rglob("*")
                                                  if p.is_file() and p.suffix in (".yml", ".j2", ".py", ".sh")]
        for question in questions:
            variable = question["variable"]
            where = "%s: %s" % (template["name"], variable)
            assert variable in specs, "%s is in no argument spec of %s or its roles %s" % (where, template["playbook"], sorted(roles))
            assert any(re.search(r"(?<![\w.])%s(?!\w)" % re.escape(variable), t) for t in texts), "nothing reads " + where
            spec, origin = specs[variable]
            kind = spec.get("type", "str")
            if kind == "bool":
                assert origin == "playbooks", "%s: a role's boolean cannot come from a survey (a string)" % where
                assert question["type"] == "multiplechoice" and question["choices"] == ["false", "true"], where
            elif kind == "int":
                assert question["type"] == "integer", where
            elif variable == "service":
                env = template["name"].split(" | ")[0]
                services = yaml.safe_load((ROOT / "inventories" / env / "group_vars" / "all" / "services.yml").read_text())
                assert question["choices"] == [s["name"] for s in services["webservice_services"]], where
            elif spec.get("choices"):
                assert question["type"] == "multiplechoice" and question["choices"] == [str(c) for c in spec["choices"]], where
            else:
                assert question["type"] == "text", where
        for variable in template["extra_vars"]:
            assert variable in specs, "%s: extra variable %s is in no argument spec" % (template["name"], variable)


def test_the_generator_refuses_what_a_survey_cannot_carry(tmp_path):
    module = generator()
    specs = module.load_specs()
    with pytest.raises(module.DataError, match="declared by no argument spec"):
        module.question({"variable": "servcie", "question": "?"}, "staging", specs)
    with pytest.raises(module.DataError, match="role's boolean"):
        module.question({"variable": "discourse_backup_restore_confirm", "question": "?"}, "staging", specs)
    with pytest.raises(module.DataError, match="not one of its choices"):
        module.question({"variable": "colour", "question": "?", "default": "red"}, "staging", specs)


def test_no_secret_is_in_the_repository(data):
    secret = {"Machine": {"password", "ssh_key_data", "ssh_public_key_data", "ssh_key_unlock", "become_password"},
              "Vault": {"vault_password"}, "Source Control": {"password", "ssh_key_data"}}
    for ctype in data["controller_credential_types"]:
        secret[ctype["name"]] = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        env = ctype["injectors"]["env"]
        assert all(re.fullmatch(r"\{\{ \w+ \}\}", v) for v in env.values()), "injectors name inputs only"
    assert set(secret["DigitalOcean API token"]) == {"token"}
    assert set(data["controller_credential_types"][0]["injectors"]["env"]) == {"DIGITALOCEAN_TOKEN"}
    assert set(data["controller_credential_types"][1]["injectors"]["env"]) == {"GODADDY_API_KEY", "GODADDY_API_SECRET"}
    for cred in data["controller_credentials"]:
        assert not set(cred["inputs"]) & secret[cred["credential_type"]], cred["name"]
        assert set(cred.get("sciops_secret_inputs_env", {})) <= secret[cred["credential_type"]], cred["name"]
    vaults = {c["name"]: c["inputs"]["vault_id"] for c in data["controller_credentials"] if c["credential_type"] == "Vault"}
    assert vaults == {"sciops %s vault" % env: env for env in ENVIRONMENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_every_schedule_parses_and_runs_when_the_runbook_says(data, env, kind):
    want = SCHEDULES[kind]
    schedule = next(s for s in data["controller_schedules"] if s["name"] == "%s %s" % (env, kind))
    assert schedule["unified_job_template"] == "%s | %s" % (env, want["template"])
    assert rrule_error(schedule["rrule"]) is None  # AWX's own rules (one DTSTART with a TZID, INTERVAL, no BYDAY=1SU ...)
    runs = next_runs(schedule["rrule"], datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc), 12)
    assert len(runs) == 12
    for run in runs:
        assert run.utcoffset().total_seconds() == 0 and (run.hour, run.minute) == (want["hour"], MINUTE[env]), run
    gaps = {(b - a).days for a, b in zip(runs, runs[1:])}
    if want["every"] == "day":
        assert gaps == {1} and runs[0].date().isoformat() == "2026-12-08"
    elif want["every"] == "monday":
        assert gaps == {7} and all(r.weekday() == 0 for r in runs) and runs[0].date().isoformat() == "2026-12-14"
    else:
        assert all(r.weekday() == 6 and r.day <= 7 for r in runs)
        assert [r.month for r in runs] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        assert runs[0].date().isoformat() == "2027-01-03"


def test_the_test_double_refuses_what_awx_refuses():
    assert rrule_error("DTSTART;TZID=UTC:20260104T040000 RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=1SU") == "BYDAY with numeric prefix not supported."
    assert rrule_error("DTSTART;TZID=UTC:20260104T040000 RRULE:FREQ=DAILY") == "INTERVAL required in rrule."
    assert "TZID" in rrule_error("DTSTART:20260104T040000 RRULE:FREQ=DAILY;INTERVAL=1")
    assert survey_error({"name": "", "description": "", "spec": []}) == "'spec' doesn't contain any items."
    question = {"question_name": "Colour", "variable": "colour", "type": "multiplechoice", "choices": ["blue", "green"], "default": "red"}
    assert "choices" in survey_error({"name": "", "description": "", "spec": [question]})
    question = {"question_name": "Lines", "variable": "lines", "type": "integer", "default": "500"}
    assert "expected to be int" in survey_error({"name": "", "description": "", "spec": [question]})
