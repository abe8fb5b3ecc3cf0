"""Filters of the discourse_backup role: the bucket's policies, in-place edits of Discourse's
containers/app.yml (only the env: keys named, every other byte kept), the backup name grammar
and the role's preflight checks (each problem names the variable and the fix)."""
from __future__ import annotations

import json
import re

import yaml
from ansible.errors import AnsibleFilterError

# <site-title>-YYYY-MM-DD-HHMMSS-v<14-digit schema version>.tar.gz (or .sql.gz without uploads);
# the host-side uploader's client-side encryption adds .age.
BACKUP_NAME = re.compile(
    r"^(?P<site>.+?)-(?P<stamp>\d{4}-\d{2}-\d{2}-\d{6})-v(?P<schema>\d{14})"
    r"\.(?P<ext>tar\.gz|sql\.gz)(?P<enc>\.age)?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ENV_KEY = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*:(?:[ \t]|$)")
_TOP_KEY = re.compile(r"^env[ \t]*:[ \t]*(#.*)?$")


def _key_prefix(prefix, site="default"):
    prefix = (prefix or "").strip("/")
    return (prefix + "/" if prefix else "") + site + "/"


def discourse_backup_key_prefix(prefix, site="default"):
    """<prefix>/<site>/: where the backups sit in the bucket (Discourse's own layout)."""
    return _key_prefix(prefix, site)


def discourse_backup_bucket_policy(bucket, require_tls=True):
    """The bucket policy: every request over plain HTTP is denied (aws:SecureTransport false)."""
    statements = []
    if require_tls:
        statements.append({
            "Sid": "DenyPlainHTTP",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


def discourse_backup_iam_policy(bucket, prefix="", site="default"):
    """The forum key's identity policy: list the bucket under its prefix only; put, get and delete
    objects (and abort its multipart uploads) under that prefix only. Nothing else."""
    base = _key_prefix(prefix, site)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListTheForumsPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [base, base + "*"]}},
            },
            {
                "Sid": "ReadAndWriteTheForumsBackups",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                           "s3:ListMultipartUploadParts"],
                "Resource": f"arn:aws:s3:::{bucket}/{base}*",
            },
        ],
    }


def discourse_backup_name(name):
    """The parts of a backup's file name ({site, stamp, schema, ext, encrypted}), or None when
    the name does not follow Discourse's grammar."""
    match = BACKUP_NAME.match(str(name))
    if not match:
        return None
    return {"site": match["site"], "stamp": match["stamp"], "schema": match["schema"], "ext": match["ext"],
            "encrypted": bool(match["enc"])}


def _quote(key, value):
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if any(ord(ch) < 32 for ch in text):
        raise AnsibleFilterError(f"app.yml env {key}: the value holds a control character or a line break")
    return "'" + text.replace("'", "''") + "'"


def _env_block(lines):
    """(first, end) line indexes of the env: mapping's body in app.yml."""
    starts = [i for i, line in enumerate(lines) if _TOP_KEY.match(line.rstrip("\r\n"))]
    if len(starts) != 1:
        raise AnsibleFilterError(
            "containers/app.yml has %s top-level 'env:' mapping(s); a standard Discourse install has exactly one"
            % len(starts))
    end = starts[0] + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    return starts[0] + 1, end


def _plan(text, settings):
    if not isinstance(text, str):
        raise AnsibleFilterError("discourse_app_yml_env expects the text of containers/app.yml")
    if not isinstance(settings, dict):
        raise AnsibleFilterError("discourse_app_yml_env expects a mapping of env keys to values (None removes a key)")
    lines = text.splitlines(keepends=True)
    first, end = _env_block(lines)
    entries = {}
    for i in range(first, end):
        match = _ENV_KEY.match(lines[i])
        if match and not lines[i].lstrip().startswith("#"):
            entries.setdefault(match["key"], i)
    indent = _ENV_KEY.match(lines[min(entries.values())])["indent"] if entries else "  "
    newline = "\r\n" if text.endswith("\r\n") or "\r\n" in text else "\n"
    changes, replace, remove, add = [], {}, set(), []
    for key, value in settings.items():
        if key in entries:
            i = entries[key]
            if value is None:
                remove.add(i)
                changes.append(key)
                continue
            try:
                current = (yaml.safe_load(lines[i]) or {}).get(key)
            except yaml.YAMLError:
                current = object()
            current = str(current).lower() if isinstance(current, bool) else current
            wanted = str(value).lower() if isinstance(value, bool) else str(value)
            if current is None or str(current) != wanted:
                ending = lines[i][len(lines[i].rstrip("\r\n")):] or newline
                replace[i] = f"{_ENV_KEY.match(lines[i])['indent']}{key}: {_quote(key, value)}{ending}"
                changes.append(key)
        elif value is not None:
            add.append(f"{indent}{key}: {_quote(key, value)}{newline}")
            changes.append(key)
    return lines, first, entries, replace, remove, add, changes


def discourse_app_yml_env(text, settings):
    """containers/app.yml with the env: keys of settings set (None removes one). Keys that already
    hold the value are left as they are (their quoting too); a new key goes after the last key of
    env:. Every other line, comment and blank line is kept byte for byte."""
    lines, first, entries, replace, remove, add, _changes = _plan(text, settings)
    out = []
    last = max(entries.values()) if entries else first - 1
    if add and last >= 0 and not lines[last].endswith(("\n", "\r")):
        lines[last] += "\n"
    for i, line in enumerate(lines):
        if i in remove:
            continue
        out.append(replace.get(i, line))
        if i == last:
            out.extend(add)
    return "".join(out)


def discourse_app_yml_env_changes(text, settings):
    """The env: keys discourse_app_yml_env would change (names only: safe to print)."""
    return _plan(text, settings)[-1]


def discourse_backup_problems(config):
    """The role's inputs checked together: one sentence per problem, naming the variable and the fix."""
    problems = []
    bucket = config.get("bucket") or ""
    mode = config.get("mode")
    if not _BUCKET.match(bucket):
        problems.append(
            f"discourse_backup_bucket must be an S3 bucket name (3-63 lowercase letters, digits and hyphens, no dots:"
            f" Discourse refuses dots); it is '{bucket}'.")
    prefix = config.get("prefix") or ""
    if prefix and not re.match(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", prefix.strip("/")):
        problems.append(f"discourse_backup_prefix must be a path of letters, digits, '.', '_' and '-' (e.g. forum/"
                        f"prod); it is '{prefix}'.")
    endpoint = config.get("endpoint_url") or ""
    if endpoint and not re.match(r"^https?://[^/\s]+/?$", endpoint):
        problems.append(f"discourse_backup_endpoint_url must be http(s)://host[:port] with no path; it is '{endpoint}'.")
    if mode in ("discourse", "host") and config.get("manage_forum", True):
        if not config.get("access_key") or not config.get("secret_key"):
            problems.append(
                "discourse_backup_s3_access_key and discourse_backup_s3_secret_key must be set (the forum's own key,"
                " from the vault: vault_discourse_backup_s3_access_key ...) for discourse_backup_mode "
                f"{mode}.")
    encryption = config.get("encryption", "none")
    if encryption == "age":
        if mode != "host":
            problems.append("discourse_backup_encryption age works only with discourse_backup_mode host (Discourse"
                            " uploads its own backups unencrypted): set discourse_backup_mode host or encryption none.")
        if not config.get("age_recipients"):
            problems.append("discourse_backup_age_recipients must list at least one age public key (age1...) for"
                            " discourse_backup_encryption age.")
        bad = [r for r in config.get("age_recipients") or [] if not re.match(r"^(age1[0-9a-z]{58}|ssh-\S+ \S+)", str(r))]
        if bad:
            problems.append(f"discourse_backup_age_recipients holds {bad[0]!r}, not an age (age1...) or SSH public key.")
    frequency = config.get("frequency_days", 1)
    expire = config.get("expire_days", 0)
    if expire and expire <= frequency:
        problems.append(f"discourse_backup_expire_days ({expire}) must be more than discourse_backup_frequency_days"
                        f" ({frequency}), or the lifecycle deletes each backup before the next one exists.")
    ratio = config.get("min_ratio_to_previous", 0.5)
    if not 0 <= float(ratio) < 1:
        problems.append(f"discourse_backup_monitor_min_ratio must be at least 0 and below 1; it is {ratio}.")
    return problems


def discourse_backup_bucket_drift(buckets, wanted):
    """What a run would change on the bucket, from amazon.aws.s3_bucket_info's buckets (with the
    bucket_facts encryption, versioning, policy, lifecycle, public access block and ownership) and
    the wanted settings ({name, sse_algorithm, versioning, policy, lifecycle: {prefix, expire_days,
    noncurrent_days, abort_days}}): one short line per difference, no secret."""
    found = [b for b in buckets or [] if b.get("name") == wanted["name"]]
    if not found:
        return [f"create the bucket {wanted['name']}"]
    info = found[0]
    drift = []
    block = (info.get("public_access_block") or {}).get("PublicAccessBlockConfiguration") or {}
    if not all(block.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")):
        drift.append("block all public access")
    rules = ((info.get("bucket_ownership_controls") or {}).get("OwnershipControls") or {}).get("Rules") or []
    if [r.get("ObjectOwnership") for r in rules] != ["BucketOwnerEnforced"]:
        drift.append("disable ACLs (object ownership BucketOwnerEnforced)")
    sse = ((info.get("bucket_encryption") or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or [{}]
    algorithm = (sse[0].get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm")
    if algorithm != wanted["sse_algorithm"]:
        drift.append(f"default encryption {algorithm} -> {wanted['sse_algorithm']}")
    status = (info.get("bucket_versioning") or {}).get("Status") or "Disabled"
    if (status == "Enabled") != bool(wanted["versioning"]):
        drift.append(f"versioning {status} -> {'Enabled' if wanted['versioning'] else 'Suspended'}")
    policy = (info.get("bucket_policy") or {}).get("Policy")
    try:
        current = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        current = None
    if wanted["policy"].get("Statement") and (current or {}).get("Statement", []) != wanted["policy"]["Statement"]:
        drift.append("bucket policy")
    life = wanted.get("lifecycle") or {}
    rule = next((r for r in (info.get("bucket_lifecycle_configuration") or {}).get("Rules") or []
                 if r.get("ID") == "sciops-discourse-backup-retention"), None)
    if life.get("expire_days", 0) > 0:
        have = rule and (
            (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix")) == life["prefix"]
            and rule.get("Status") == "Enabled"
            and (rule.get("Expiration") or {}).get("Days") == life["expire_days"]
            and (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays") == life["noncurrent_days"]
            and (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation") == life["abort_days"])
        if not have:
            drift.append(f"lifecycle: expire {life['prefix']} after {life['expire_days']} days")
    elif rule:
        drift.append("lifecycle: remove the expiry rule")
    return drift


class FilterModule:
    def filters(self):
        return {
            "discourse_backup_key_prefix": discourse_backup_key_prefix,
            "discourse_backup_bucket_policy": discourse_backup_bucket_policy,
            "discourse_backup_iam_policy": discourse_backup_iam_policy,
            "discourse_backup_name": discourse_backup_name,
            "discourse_app_yml_env": discourse_app_yml_env,
            "discourse_app_yml_env_changes": discourse_app_yml_env_changes,
            "discourse_backup_problems": discourse_backup_problems,
            "discourse_backup_bucket_drift": discourse_backup_bucket_drift,
        }
