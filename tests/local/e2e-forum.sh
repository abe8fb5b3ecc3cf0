# shellcheck shell=bash
# Sourced by tests/local/e2e.sh (log, fail, the local environment up): the forum's backups on the
# local environment. The forum is the stand-in (tests/discourse/, a test double of a Discourse
# install) and the bucket sits at the S3 test endpoint (moto on local-ca1); the discourse_backup
# role set both up in `make up` as it would a real forum:
#   - a new backup (the stand-in's daily job, as Discourse's scheduler) reaches the bucket through
#     the uploader's unit, byte for byte (SHA-256 of the object read back from this machine with
#     the forum's key equals the file's on the node); a second upload run writes nothing;
#   - the freshness monitor passes and its timer, the uploader's and the monthly drill's are
#     scheduled; the S3 endpoint refuses a request without credentials;
#   - the restore drill's playbook restores the newest backup into a throwaway database with the
#     source's row counts, and the status playbook then reports monitor and drill ok.
forum_node=local-forum1
fx() { docker exec "$forum_node" "$@"; }
forum_backups=/var/discourse/shared/standalone/backups/default

log "forum: a new backup of the stand-in forum reaches the S3 test endpoint through the uploader, whole; a second run uploads nothing"
fx systemctl start standin-forum-backup.service || fail "the stand-in forum could not make a backup"
fx systemctl start sciops-discourse-backup-upload.service \
  || fail "the uploader failed: $(fx journalctl -u sciops-discourse-backup-upload.service -n 5 --no-pager -o cat)"
newest=$(fx bash -c "ls -t $forum_backups/*.tar.gz | head -1")
newest=${newest##*/}
local_sha=$(fx sha256sum "$forum_backups/$newest" | cut -d' ' -f1)
forum_hostvars=$(ansible-inventory -i inventories/local --host "$forum_node" 2>/dev/null) || fail "could not read the local inventory"
forum_bucket() {  # forum_bucket ACTION [KEY]: the bucket read from this machine with the forum's own key
  FORUM_HOSTVARS="$forum_hostvars" python - "$@" <<'PY'
import hashlib, json, os, sys
import boto3, botocore.config, botocore.exceptions
hv = json.loads(os.environ["FORUM_HOSTVARS"])
s3 = boto3.client("s3", endpoint_url="http://172.30.40.5:5000", region_name="us-east-1",
                  aws_access_key_id=hv["vault_discourse_backup_s3_access_key"],
                  aws_secret_access_key=hv["vault_discourse_backup_s3_secret_key"],
                  config=botocore.config.Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30))
bucket, prefix = "sciops-local-forum-backups", "default/"
if sys.argv[1] == "sha256":
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=prefix + sys.argv[2])["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    print(digest.hexdigest())
elif sys.argv[1] == "versions":
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    print(sum(len(page.get("Versions", [])) for page in pages))
elif sys.argv[1] == "anonymous":
    anonymous = boto3.client("s3", endpoint_url="http://172.30.40.5:5000", region_name="us-east-1",
                             config=botocore.config.Config(signature_version=botocore.UNSIGNED,
                                                           s3={"addressing_style": "path"}, connect_timeout=5))
    try:
        anonymous.get_object(Bucket=bucket, Key=prefix + sys.argv[2])
        print("served")
    except botocore.exceptions.ClientError as err:
        print("refused " + err.response["Error"]["Code"])
PY
}
remote_sha=$(forum_bucket sha256 "$newest") || fail "could not read $newest back from the bucket"
[ "$remote_sha" = "$local_sha" ] || fail "the object's SHA-256 ($remote_sha) differs from the backup's ($local_sha)"
versions=$(forum_bucket versions)
fx systemctl start sciops-discourse-backup-upload.service || fail "the second upload run failed"
[ "$(forum_bucket versions)" = "$versions" ] || fail "the second upload run wrote to the bucket"
anonymous=$(forum_bucket anonymous "$newest")
case "$anonymous" in refused*) ;; *) fail "the bucket served a backup without credentials ($anonymous)" ;; esac
log "forum: $newest in the bucket with the same SHA-256 (${local_sha:0:12}...); second run: still $versions object version(s); without credentials: $anonymous"

fx systemctl start sciops-discourse-backup-monitor.service \
  || fail "the freshness monitor failed: $(fx journalctl -u sciops-discourse-backup-monitor.service -n 5 --no-pager -o cat)"
for timer in upload monitor drill; do
  next=$(fx systemctl show -P NextElapseUSecRealtime "sciops-discourse-backup-$timer.timer")
  [ -n "$next" ] || fail "sciops-discourse-backup-$timer.timer is not scheduled"
  log "forum: sciops-discourse-backup-$timer.timer next runs $next"
done

drill=$(ansible-playbook -i inventories/local playbooks/forum_restore_drill.yml 2>&1) \
  || { printf '%s\n' "$drill" | tail -20; fail "the restore drill failed"; }
drill=$(tr -s ' \n' ' ' <<<"$drill")  # the messages as one line (the callback wraps them)
grep -qE "Restore drill of $newest passed on $forum_node: [1-9][0-9]* users, [1-9][0-9]* topics, [1-9][0-9]* posts" <<<"$drill" \
  || { printf '%s\n' "${drill: -2000}"; fail "the restore drill did not report the newest backup's rows"; }
# The forum has not changed since the backup: the restored counts are the forum's own.
expected=$(fx /usr/local/bin/standin-forum --db discourse stats \
  | python -c 'import json, sys; s = json.load(sys.stdin); print("%(users)s users, %(topics)s topics, %(posts)s posts" % s)')
grep -q "passed on $forum_node: $expected" <<<"$drill" || fail "the drill's rows differ from the forum's ($expected)"
log "forum: $(grep -oE "Restore drill of [^:]+: [^.]+ in [0-9.]+ s" <<<"$drill") (the forum has $expected)"
status=$(ansible-playbook -i inventories/local playbooks/forum_backup_status.yml 2>&1) || fail "the status playbook failed"
status=$(tr -s ' \n' ' ' <<<"$status")
grep -q "monitor ok; last drill ok" <<<"$status" || fail "the status playbook does not report monitor and drill ok"
log "forum: $(grep -oE "$forum_node: [0-9]+ backup\(s\) in [^;]+; newest [^;]+; monitor ok; last drill ok" <<<"$status")"
