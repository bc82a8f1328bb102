#!/usr/bin/env bash
# A target that answers but refuses every request (a wrong secret: every
# request gets SignatureDoesNotMatch) is not reachable for tiering: `status
# --json` says reachable false and why, the log says why, and a run tiers
# nothing and leaves its files alone. Run against each S3 server
# (tests/s3/on.sh).
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init refused s3

mkdir -p "$T/data"
head -c 5000 /dev/urandom >"$T/data/f"
touch -m -d '2020-05-05' "$T/data/f"
sum=$(sha256sum <"$T/data/f")
e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data")"
e2e_start AWS_SECRET_ACCESS_KEY="not-the-secret:$TD_S3_SECRET_KEY"

deadline=$((SECONDS + 60))
until [ "$(status_get 'd["targets"]["s3"]["checked"]' 2>/dev/null)" = True ] || [ $SECONDS -ge $deadline ]; do
	sleep 0.1
done
t=$(status_get 'json.dumps(d["targets"]["s3"])')
[ "$(status_get 'd["targets"]["s3"]["reachable"]')" = False ] &&
	pass "status: the refusing target is not reachable" || fail "status says: $t"
# The last word may be the probe's HEAD: a 403 without a body (no S3 code).
case $t in
*"refuses our requests"*SignatureDoesNotMatch* | *"refuses our requests: access denied (HTTP 403): wrong credentials"*)
	pass "status says why: $t" ;;
*) fail "status does not say why: $t" ;;
esac
grep -q 'SignatureDoesNotMatch' "$T/tierd.log" && pass "the log says why" ||
	fail "the log does not name SignatureDoesNotMatch: $(tail -5 "$T/tierd.log")"

ctl run p >"$T/run.out" 2>&1 || true
wait_idle 60 || fail "tierd did not go idle"
[ -f "$T/data/f" ] && [ ! -L "$T/data/f" ] && [ "$(sha256sum <"$T/data/f")" = "$sum" ] &&
	pass "the file is left alone" || fail "the file changed: $(ls -l "$T/data")"
finish
