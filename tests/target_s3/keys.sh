#!/usr/bin/env bash
# Access keys and secrets with any printable characters (':' first: Swift's
# "account:user", but also blanks, quotes, '%', '\', '~'): a throwaway
# radosgw user with such keys makes its own bucket, puts, heads, gets and
# deletes through the target layer (s3tool), and passes tierctl check-target.
# Needs the radosgw's ceph.conf (TD_RGW_CONF, in tests/s3/radosgw.sh's env).
#   keys.sh S3TOOL
set -euo pipefail
s3tool=${1:?usage: keys.sh S3TOOL}
. "$(dirname "$0")/../lib/missing.sh"
. "$(dirname "$0")/../lib/conf.sh"
td_need_s3
[ -n "${TD_RGW_CONF:-}" ] && [ -r "$TD_RGW_CONF" ] || td_missing "TD_RGW_CONF (radosgw's ceph.conf)"
td_need_cmds radosgw-admin
fails=0
pass() { echo "ok $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
uid=tierd-keys-$$
work=$(mktemp -d /tmp/tierd-keys.XXXXXX)
ak="acct:user one!\"%~$$"
sk="se:cr et#'\"%\\+~:=&$$"
cleanup() {
	set +e
	radosgw-admin -c "$TD_RGW_CONF" user rm --uid "$uid" --purge-data >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
radosgw-admin -c "$TD_RGW_CONF" user create --uid "$uid" --display-name "tierd keys test" \
	--access-key "$ak" --secret-key "$sk" >"$work/user.json" || { echo "FAIL user create"; exit 1; }
[ "$(python3 -c 'import json,sys; k=json.load(open(sys.argv[1]))["keys"][0]; print(k["access_key"] == sys.argv[2] and k["secret_key"] == sys.argv[3])' "$work/user.json" "$ak" "$sk")" = True ] ||
	{ echo "FAIL radosgw did not keep the keys as given"; exit 1; }
export TD_S3_ACCESS_KEY=$ak TD_S3_SECRET_KEY=$sk TD_S3_BUCKET=$uid TD_S3_PREFIX="k/"
head -c 300000 /dev/urandom >"$work/f"
sum=$(sha256sum <"$work/f" | cut -d' ' -f1)
# The user's keys can take a moment to reach the gateway: the first call is retried.
ok=
for _ in $(seq 50); do
	if "$s3tool" mkbucket 2>"$work/err"; then ok=1; break; fi
	sleep 0.1
done
[ -n "$ok" ] && pass "mkbucket with the hostile keys" || fail "mkbucket: $(cat "$work/err")"
"$s3tool" put obj "$work/f" >/dev/null && pass "put" || fail "put"
"$s3tool" get obj "$work/back" "$sum" && cmp -s "$work/f" "$work/back" && pass "get, sha256 verified" || fail "get"
"$s3tool" head obj | grep -q "^size 300000$" && pass "head" || fail "head"
"$s3tool" delete obj && pass "delete" || fail "delete"

mkdir -p "$work/state" "$work/cache" "$work/run"
{
	td_conf_tierd "$work"
	td_conf_s3_target keys "ct/"
} >"$work/tierd.conf"
sed -i "s|^bucket = .*|bucket = $uid|" "$work/tierd.conf"
if AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk "${TIERCTL:?}" -c "$work/tierd.conf" check-target keys >"$work/ct.out" 2>&1; then
	pass "check-target with the hostile keys"
else
	fail "check-target: $(cat "$work/ct.out")"
fi
grep -qF "$sk" "$work/ct.out" && fail "check-target printed the secret"
echo "$fails failed"
[ "$fails" = 0 ]
