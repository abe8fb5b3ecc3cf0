"""The role's bucket tasks (amazon.aws.s3_bucket, community.aws.s3_lifecycle) against a real S3
endpoint on loopback (moto server): every property read back, a second run and check mode change
nothing, and no key appears in the output."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.config import Config

ADMIN_SECRET = "admin-secret-" + uuid.uuid4().hex


@pytest.fixture
def bucket_run(playbook, s3_env, tmp_path):
    bucket = "forum-" + uuid.uuid4().hex[:12]
    policy_file = tmp_path / "out" / "policy.json"

    def run(check=False, **extra):
        role_vars = {"discourse_backup_bucket": bucket, "discourse_backup_prefix": "prod",
                     "discourse_backup_endpoint_url": s3_env, "discourse_backup_admin_access_key": "admin-key",
                     "discourse_backup_admin_secret_key": ADMIN_SECRET, "discourse_backup_iam_policy_file": str(policy_file),
                     "discourse_backup_expire_days": 14, **extra}
        tasks = [{"name": "bucket", "ansible.builtin.include_role": {
            "name": "sciops.platform.discourse_backup", "tasks_from": "bucket.yml"}, "vars": role_vars}]
        return playbook(tasks, check=check, extra_args=("-v",))

    client = boto3.client("s3", endpoint_url=s3_env, config=Config(s3={"addressing_style": "path"}))
    return bucket, policy_file, client, run


def changed(result):
    return [task for task in result.results if task.get("changed")]


def test_bucket_is_private_encrypted_versioned_with_lifecycle_and_tls_policy(bucket_run):
    bucket, policy_file, client, run = bucket_run
    result = run(check=True)
    assert result.rc == 0, result
    assert bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]  # check mode: nothing created
    assert not policy_file.exists()
    assert f"create the bucket {bucket}" in result.stdout

    result = run()
    assert result.rc == 0, result
    assert ADMIN_SECRET not in result.stdout + result.stderr
    block = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    assert client.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    grants = client.get_bucket_acl(Bucket=bucket)["Grants"]
    assert all("URI" not in grant["Grantee"] for grant in grants)  # no AllUsers / AuthenticatedUsers grant
    rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule.get("Filter", {}).get("Prefix", rule.get("Prefix")) == "prod/default/"
    assert rule["Expiration"]["Days"] == 14
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    (statement,) = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    iam = json.loads(policy_file.read_text())
    assert iam["Statement"][1]["Resource"] == f"arn:aws:s3:::{bucket}/prod/default/*"

    again = run()
    assert again.rc == 0, again
    assert changed(again) == [], again
    check = run(check=True)
    assert check.rc == 0 and changed(check) == [], check


def test_a_change_is_applied_and_check_mode_writes_nothing(bucket_run):
    bucket, _policy_file, client, run = bucket_run
    assert run().rc == 0
    result = run(check=True, discourse_backup_expire_days=60)
    assert result.rc == 0 and len(changed(result)) == 1, result
    assert "lifecycle: expire prod/default/ after 60 days" in result.stdout
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"]["Days"] == 14
    result = run(discourse_backup_expire_days=60)
    assert result.rc == 0 and len(changed(result)) == 1, result
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"]["Days"] == 60


def test_no_policy_file_is_written_unless_asked_so_a_fresh_project_folder_stays_unchanged(bucket_run, tmp_path):
    # AWX starts every job in a fresh project folder: a file written there on every run would make
    # every run (the nightly drift check too) report a change.
    bucket, policy_file, client, run = bucket_run
    first = run(discourse_backup_iam_policy_file="")
    assert first.rc == 0, first
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    written = list(tmp_path.parent.rglob("*iam-policy*.json")) + ([policy_file] if policy_file.exists() else [])
    assert written == []
    again = run(discourse_backup_iam_policy_file="")
    assert again.rc == 0 and changed(again) == [], again
    # Asked for: written, then left alone.
    assert run().rc == 0 and policy_file.exists()


def test_an_endpoint_with_a_private_ca(playbook, moto_tls, s3_env, tmp_path):
    endpoint, ca = moto_tls
    bucket = "forum-" + uuid.uuid4().hex[:12]

    def run(**extra):
        role_vars = {"discourse_backup_bucket": bucket, "discourse_backup_endpoint_url": endpoint,
                     "discourse_backup_ca_bundle": ca, "discourse_backup_iam_policy_file": str(tmp_path / "policy.json"),
                     **extra}
        return playbook([{"name": "bucket", "ansible.builtin.include_role": {
            "name": "sciops.platform.discourse_backup", "tasks_from": "bucket.yml"}, "vars": role_vars}])

    assert run().rc == 0
    client = boto3.client("s3", endpoint_url=endpoint, verify=ca, config=Config(s3={"addressing_style": "path"}))
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Sid"] == "DenyPlainHTTP"
    untrusted = run(discourse_backup_ca_bundle="")
    assert untrusted.rc != 0  # the system's CAs do not know the private one
