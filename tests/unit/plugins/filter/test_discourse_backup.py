"""plugins/filter/discourse_backup.py: app.yml edited in place (only the env: keys named, every
other byte kept, idempotent), the bucket and key policies, the name grammar, the preflight."""
from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.sciops.platform.plugins.filter.discourse_backup import (
    FilterModule,
    discourse_app_yml_env,
    discourse_app_yml_env_changes,
    discourse_backup_bucket_drift,
    discourse_backup_bucket_policy,
    discourse_backup_iam_policy,
    discourse_backup_key_prefix,
    discourse_backup_name,
    discourse_backup_problems,
)

APP_YML = (Path(__file__).resolve().parents[3] / "fixtures" / "discourse" / "app.yml.sample").read_text()
S3 = {
    "DISCOURSE_BACKUP_LOCATION": "s3",
    "DISCOURSE_S3_BACKUP_BUCKET": "forum-backups/prod",
    "DISCOURSE_S3_REGION": "us-west-1",
    "DISCOURSE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "DISCOURSE_S3_SECRET_ACCESS_KEY": "se'cret/+",
}


def changed_lines(before, after):
    return [line for line in difflib.ndiff(before.splitlines(True), after.splitlines(True)) if line[:1] in "+-"]


def test_new_keys_go_after_the_last_env_key_and_nothing_else_changes():
    after = discourse_app_yml_env(APP_YML, S3)
    diff = changed_lines(APP_YML, after)
    assert all(line.startswith("+ ") for line in diff) and len(diff) == len(S3)
    lines = after.splitlines()
    at = lines.index("  LETSENCRYPT_ACCOUNT_EMAIL: admin@example.org")
    assert lines[at + 1] == "  DISCOURSE_BACKUP_LOCATION: 's3'"
    assert lines[at + 5] == "  DISCOURSE_S3_SECRET_ACCESS_KEY: 'se''cret/+'"
    data = yaml.safe_load(after)
    assert {k: data["env"][k] for k in S3} == S3
    # The rest of the document is the same data.
    before = yaml.safe_load(APP_YML)
    assert {k: v for k, v in data["env"].items() if k not in S3} == before["env"]
    assert {k: v for k, v in data.items() if k != "env"} == {k: v for k, v in before.items() if k != "env"}


def test_a_second_edit_changes_nothing():
    once = discourse_app_yml_env(APP_YML, S3)
    assert discourse_app_yml_env(once, S3) == once
    assert discourse_app_yml_env_changes(once, S3) == []
    assert discourse_app_yml_env_changes(APP_YML, S3) == list(S3)


def test_a_changed_value_replaces_its_line_only_and_keeps_equal_values_as_written():
    text = APP_YML.replace("  LANG: en_US.UTF-8\n", "  LANG: en_US.UTF-8\n  DISCOURSE_S3_REGION: \"us-west-1\"  # hand\n"
                           "  DISCOURSE_S3_BACKUP_BUCKET: old-bucket\n")
    after = discourse_app_yml_env(text, S3)
    assert '  DISCOURSE_S3_REGION: "us-west-1"  # hand\n' in after  # equal value: untouched
    assert "  DISCOURSE_S3_BACKUP_BUCKET: 'forum-backups/prod'\n" in after
    assert "old-bucket" not in after
    assert discourse_app_yml_env_changes(text, S3) == [
        "DISCOURSE_BACKUP_LOCATION", "DISCOURSE_S3_BACKUP_BUCKET", "DISCOURSE_S3_ACCESS_KEY_ID",
        "DISCOURSE_S3_SECRET_ACCESS_KEY"]


def test_none_removes_a_key_and_commented_keys_are_left_alone():
    once = discourse_app_yml_env(APP_YML, S3)
    after = discourse_app_yml_env(once, {"DISCOURSE_BACKUP_LOCATION": None, "DISCOURSE_CDN_URL": None,
                                         "UNICORN_WORKERS": None})
    assert "DISCOURSE_BACKUP_LOCATION" not in after
    assert "  #DISCOURSE_CDN_URL: https://discourse-cdn.example.com\n" in after
    assert "  #UNICORN_WORKERS: 3\n" in after
    assert changed_lines(once, after) == ["- " + "  DISCOURSE_BACKUP_LOCATION: 's3'\n"]


def test_crlf_and_a_missing_final_newline_are_kept():
    text = "env:\r\n  LANG: C\r\nvolumes: []\r\n"
    assert discourse_app_yml_env(text, {"A": "b"}) == "env:\r\n  LANG: C\r\n  A: 'b'\r\nvolumes: []\r\n"
    assert discourse_app_yml_env("x: 1\nenv:\n    LANG: C", {"A": 1}) == "x: 1\nenv:\n    LANG: C\n    A: '1'\n"


def test_an_app_yml_without_one_env_mapping_is_refused():
    with pytest.raises(AnsibleFilterError, match="0 top-level 'env:'"):
        discourse_app_yml_env("params: {}\n", S3)
    with pytest.raises(AnsibleFilterError, match="control character"):
        discourse_app_yml_env(APP_YML, {"X": "a\nb"})


def test_bucket_policy_denies_plain_http():
    policy = discourse_backup_bucket_policy("forum-backups")
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::forum-backups", "arn:aws:s3:::forum-backups/*"]


def test_iam_policy_is_limited_to_the_prefix():
    policy = discourse_backup_iam_policy("forum-backups", "/prod/")
    listing, objects = policy["Statement"]
    assert listing["Action"] == ["s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["prod/default/", "prod/default/*"]}}
    assert objects["Resource"] == "arn:aws:s3:::forum-backups/prod/default/*"
    assert set(objects["Action"]) == {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                                      "s3:ListMultipartUploadParts"}
    assert all(not action.endswith("*") for statement in policy["Statement"] for action in statement["Action"])
    assert discourse_backup_key_prefix("") == "default/"


def test_name_grammar():
    assert discourse_backup_name("deepchem-forum-2026-12-07-033000-v20241126124358.tar.gz") == {
        "site": "deepchem-forum", "stamp": "2026-12-07-033000", "schema": "20241126124358", "ext": "tar.gz",
        "encrypted": False}
    assert discourse_backup_name("f-2026-12-07-033000-v20241126124358.sql.gz.age")["encrypted"] is True
    for bad in ("forum-2026-12-07.tar.gz", "forum-2026-12-07-033000-v2024.tar.gz", "forum-2026-12-07-033000-v20241126124358.zip"):
        assert discourse_backup_name(bad) is None


GOOD = {"bucket": "forum-backups", "prefix": "prod", "mode": "host", "access_key": "a", "secret_key": "s",
        "encryption": "none", "frequency_days": 1, "expire_days": 30, "endpoint_url": "http://127.0.0.1:5000"}


@pytest.mark.parametrize(("change", "message"), [
    ({"bucket": "forum.backups"}, "discourse_backup_bucket must be an S3 bucket name"),
    ({"bucket": "F"}, "discourse_backup_bucket must be an S3 bucket name"),
    ({"prefix": "a b"}, "discourse_backup_prefix must be a path"),
    ({"endpoint_url": "s3.example.org"}, "discourse_backup_endpoint_url must be http(s)://host[:port]"),
    ({"secret_key": ""}, "discourse_backup_s3_access_key and discourse_backup_s3_secret_key must be set"),
    ({"encryption": "age", "age_recipients": []}, "discourse_backup_age_recipients must list"),
    ({"encryption": "age", "mode": "discourse", "age_recipients": ["age1" + "q" * 58]}, "works only with"),
    ({"encryption": "age", "age_recipients": ["nope"]}, "not an age (age1...) or SSH public key"),
    ({"expire_days": 1}, "discourse_backup_expire_days (1) must be more than"),
    ({"min_ratio_to_previous": 1.5}, "discourse_backup_monitor_min_ratio"),
])
def test_problems_name_the_variable(change, message):
    assert discourse_backup_problems(GOOD) == []
    problems = discourse_backup_problems({**GOOD, **change})
    assert len(problems) == 1 and message in problems[0], problems


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "discourse_backup_key_prefix", "discourse_backup_bucket_policy", "discourse_backup_iam_policy",
        "discourse_backup_name", "discourse_app_yml_env", "discourse_app_yml_env_changes", "discourse_backup_problems",
        "discourse_backup_bucket_drift"}


def _info(**change):
    info = {
        "name": "forum-backups",
        "public_access_block": {"PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                                                                   "BlockPublicPolicy": True, "RestrictPublicBuckets": True}},
        "bucket_ownership_controls": {"OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}},
        "bucket_encryption": {"ServerSideEncryptionConfiguration": {"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}},
        "bucket_versioning": {"Status": "Enabled"},
        "bucket_policy": {"Policy": json.dumps(discourse_backup_bucket_policy("forum-backups"))},
        "bucket_lifecycle_configuration": {"Rules": [{
            "ID": "sciops-discourse-backup-retention", "Filter": {"Prefix": "prod/default/"}, "Status": "Enabled",
            "Expiration": {"Days": 30}, "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]},
    }
    info.update(change)
    return [info]


WANTED = {"name": "forum-backups", "sse_algorithm": "AES256", "versioning": True,
          "policy": discourse_backup_bucket_policy("forum-backups"),
          "lifecycle": {"prefix": "prod/default/", "expire_days": 30, "noncurrent_days": 7, "abort_days": 1}}


def test_bucket_drift_reports_each_difference_and_nothing_when_converged():
    assert discourse_backup_bucket_drift(_info(), WANTED) == []
    assert discourse_backup_bucket_drift([], WANTED) == ["create the bucket forum-backups"]
    drift = discourse_backup_bucket_drift(_info(
        bucket_versioning={"Status": "Suspended"}, bucket_policy={}, public_access_block={},
        bucket_encryption={}, bucket_ownership_controls={}), WANTED)
    assert drift == ["block all public access", "disable ACLs (object ownership BucketOwnerEnforced)",
                     "default encryption None -> AES256", "versioning Suspended -> Enabled", "bucket policy"]
    assert discourse_backup_bucket_drift(_info(), {**WANTED, "lifecycle": {**WANTED["lifecycle"], "expire_days": 60}}) == [
        "lifecycle: expire prod/default/ after 60 days"]
    assert discourse_backup_bucket_drift(_info(), {**WANTED, "lifecycle": {"expire_days": 0}}) == [
        "lifecycle: remove the expiry rule"]
