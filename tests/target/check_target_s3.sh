#!/usr/bin/env bash
# tierctl check-target on s3 targets against the radosgw started by scripts/test
# (TD_S3_*): the real bucket passes (with the plain-http warning), --json says
# so, nothing is left under the scratch prefix; a wrong secret, a missing
# bucket and a closed port each fail with exit 1 and their own message.
set -u
. "$(dirname "$0")/lib.sh"
td_need_s3
work=$(mktemp -d "${TMPDIR:-/tmp}/tierd-check-target-s3.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="ct-$$-$RANDOM/"
port=${TD_S3_ENDPOINT##*:}
mkdir -p "$work/state" "$work/cache" "$work/run"
{
	td_conf_tierd "$work"
	td_conf_s3_target rgw "$prefix"
	cat <<CONF

[target "nobucket"]
type = s3
endpoint = $TD_S3_ENDPOINT
region = ${TD_S3_REGION:-us-east-1}
bucket = tierd-no-such-bucket-$$

[target "closed"]
type = s3
endpoint = http://127.0.0.1:1
bucket = tierd-closed

# Virtual-hosted addressing: bucket.localhost:1 in the Host header (radosgw's
# rgw_dns_name and Swift's storage_domain are "localhost"), every connection
# sent to the real port by connect_to; without it, port 1 refuses.
[target "virtual"]
type = s3
endpoint = http://localhost:1
region = ${TD_S3_REGION:-us-east-1}
bucket = $TD_S3_BUCKET
prefix = ${prefix}virtual/
addressing = virtual
connect_to = 127.0.0.1:$port

# Hostile bytes in the prefix: blanks, non-ASCII, +, %, ~ and more.
[target "hostile"]
type = s3
endpoint = $TD_S3_ENDPOINT
region = ${TD_S3_REGION:-us-east-1}
bucket = $TD_S3_BUCKET
prefix = ${prefix}a b/ünï ☃/+%20%~!\$&'()*,;=:@/

[target "wrongregion"]
type = s3
endpoint = $TD_S3_ENDPOINT
region = eu-west-3
bucket = $TD_S3_BUCKET
prefix = ${prefix}region/
CONF
} >"$work/tierd.conf"
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY

ct_expect 0 "check-target rgw" rgw
ct_steps_ok credentials open "bucket reachable" put head clock latency "range get" list multipart delete
case $TD_S3_ENDPOINT in
http://*) grep -q "plain http" <<<"$out" || fail "no plain-http warning" ;;
esac

json=$("$tierctl" -c "$work/tierd.conf" --json check-target rgw) || fail "--json: exit $?"
python3 - "$json" <<'PY' || fail "--json output wrong: $json"
import json, sys
d = json.loads(sys.argv[1])
assert d["ok"] is True and d["type"] == "s3", d
assert all(s["ok"] and s["error"] is None for s in d["steps"]), d["steps"]
assert isinstance(d["latency_ms"], (int, float)) and d["clock_skew_s"] is not None
PY

# Nothing left under the prefix, and no multipart upload left open.
if command -v aws >/dev/null; then
	left=$(aws --endpoint-url "$TD_S3_ENDPOINT" s3api list-objects-v2 --bucket "$TD_S3_BUCKET" \
		--prefix "$prefix" --query 'length(Contents || `[]`)' --output text 2>&1)
	[ "$left" = "0" ] || fail "objects left under $prefix: $left"
	ups=$(aws --endpoint-url "$TD_S3_ENDPOINT" s3api list-multipart-uploads \
		--bucket "$TD_S3_BUCKET" --prefix "$prefix" --query 'length(Uploads || `[]`)' \
		--output text 2>&1)
	[ "$ups" = "0" ] || fail "multipart uploads left open under $prefix: $ups"
fi

ct_expect 1 "wrong secret" env AWS_SECRET_ACCESS_KEY=wrong-secret rgw
grep -qiE "SignatureDoesNotMatch|authentication|credentials" <<<"$out" ||
	fail "wrong secret: no clear message"
grep -q "wrong-secret" <<<"$out" && fail "the secret was printed"

ct_expect 1 "missing bucket" nobucket
grep -qE "does not exist.*create it" <<<"$out" || fail "missing bucket: does not say what to change"

ct_expect 1 "closed port" timeout 100 closed
grep -qiE "connect|refused|unreachable" <<<"$out" || fail "closed port: no clear message"

ct_expect 0 "virtual-hosted addressing through connect_to" virtual
ct_steps_ok "bucket reachable" put head "range get" list multipart delete
ct_expect 0 "a prefix with blanks, non-ASCII, + % ~" hostile
ct_steps_ok "bucket reachable" put head "range get" list multipart delete

# The wrong region: Swift's s3api refuses the signature's scope and names the
# region it wants (as AWS does); radosgw signs in any region of its
# zonegroup, so there is nothing to refuse.
if [ "${TD_S3_SERVER:-radosgw}" = swift ]; then
	ct_expect 1 "wrong region" wrongregion
	grep -q "set region = ${TD_S3_REGION:-us-east-1}" <<<"$out" ||
		fail "wrong region: does not say which region to set"
else
	ct_expect 0 "radosgw takes any region" wrongregion
fi
echo "PASS"
