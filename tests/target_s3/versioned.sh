#!/usr/bin/env bash
# A bucket with versioning enabled (docs/tierd.8, VERSIONED BUCKETS): the
# target's delete (gc's and rollback's) leaves a delete marker and the old
# versions by default; with delete_versions = yes (TD_S3_DELETE_VERSIONS=1 for
# s3tool) it removes every version and delete marker of that key and of no
# other, also when the key has several versions. Run on each S3 server that
# supports versioning (tests/s3/on.sh).
#   versioned.sh S3TOOL
set -euo pipefail
s3tool=${1:?usage: versioned.sh S3TOOL}
. "$(dirname "$0")/../lib/missing.sh"
td_need_s3
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
export AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
s3api() { aws --endpoint-url "$TD_S3_ENDPOINT" s3api "$@"; }
fails=0
pass() { echo "ok $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
bucket=tierd-ver-$$-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d /tmp/tierd-versioned.XXXXXX)
cleanup() {
	set +e
	s3api list-object-versions --bucket "$bucket" --output json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin) if sys.stdin.readable() else {}
for v in d.get("Versions", []) + d.get("DeleteMarkers", []):
    print(v["Key"] + "\t" + v["VersionId"])' | while IFS=$'\t' read -r k v; do
		s3api delete-object --bucket "$bucket" --key "$k" --version-id "$v" >/dev/null
	done
	s3api delete-bucket --bucket "$bucket" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
s3api create-bucket --bucket "$bucket" >/dev/null
s3api put-bucket-versioning --bucket "$bucket" --versioning-configuration Status=Enabled
[ "$(s3api get-bucket-versioning --bucket "$bucket" --query Status --output text)" = Enabled ] ||
	{ echo "FAIL versioning not enabled on $bucket"; exit 1; }
pass "bucket $bucket has versioning enabled"

export TD_S3_BUCKET=$bucket TD_S3_PREFIX="v a+ü/"
# Versions and delete markers of KEY (full key), as "versions markers".
count() {
	s3api list-object-versions --bucket "$bucket" --prefix "$1" --output json | python3 -c '
import json, sys
d = json.load(sys.stdin)
k = sys.argv[1]
print(len([v for v in d.get("Versions", []) if v["Key"] == k]),
      len([v for v in d.get("DeleteMarkers", []) if v["Key"] == k]))' "$1"
}
head -c 1000 /dev/urandom >"$work/a"
head -c 2000 /dev/urandom >"$work/b"
for k in obj obj obj-neighbour gone gone; do
	"$s3tool" put "$k" "$work/a" >/dev/null
done
"$s3tool" put obj "$work/b" >/dev/null
[ "$(count "${TD_S3_PREFIX}obj")" = "3 0" ] && pass "three versions of obj" || fail "obj: $(count "${TD_S3_PREFIX}obj")"

# Default: a delete marker; the old versions stay (and are billed).
"$s3tool" delete obj && pass "delete (default)" || fail "delete (default)"
[ "$(count "${TD_S3_PREFIX}obj")" = "3 1" ] && pass "default delete: a delete marker, the 3 versions stay" ||
	fail "default delete left: $(count "${TD_S3_PREFIX}obj")"
"$s3tool" head obj >/dev/null 2>&1 && fail "obj still readable after the delete" || pass "obj reads as gone"

# delete_versions = yes: every version and the marker of that key go.
TD_S3_DELETE_VERSIONS=1 "$s3tool" delete obj && pass "delete (delete_versions)" || fail "delete (delete_versions)"
[ "$(count "${TD_S3_PREFIX}obj")" = "0 0" ] && pass "delete_versions: no version or marker of obj left" ||
	fail "delete_versions left: $(count "${TD_S3_PREFIX}obj")"
[ "$(count "${TD_S3_PREFIX}obj-neighbour")" = "1 0" ] && pass "the neighbour key obj-neighbour untouched" ||
	fail "obj-neighbour: $(count "${TD_S3_PREFIX}obj-neighbour")"
TD_S3_DELETE_VERSIONS=1 "$s3tool" delete gone && [ "$(count "${TD_S3_PREFIX}gone")" = "0 0" ] &&
	pass "delete_versions on a key never deleted before: all gone" || fail "gone: $(count "${TD_S3_PREFIX}gone")"
TD_S3_DELETE_VERSIONS=1 "$s3tool" delete never-there && pass "delete_versions of a missing key succeeds" ||
	fail "delete_versions of a missing key failed"
echo "$fails failed"
[ "$fails" = 0 ]
