#!/usr/bin/env bash
# TLS with a private CA, on the test S3 server (tests/s3/on.sh picks which)
# behind a TLS front (tests/s3/tls_proxy.sh: stunnel, a CA made by openssl):
# with ca_file = the CA, check-target passes, also virtual-hosted, and warns
# of no plain http; without ca_file, and with another CA, it fails saying the
# certificate could not be verified and that ca_file is the fix; a plain http
# endpoint still warns.
set -u
. "$(dirname "$0")/lib.sh"
td_need_s3
command -v stunnel4 >/dev/null || td_missing "stunnel4 is not installed"
work=$(mktemp -d "${TMPDIR:-/tmp}/tierd-check-target-tls.XXXXXX")
src=$(cd "$(dirname "$0")/../.." && pwd)
trap '"$src/tests/s3/tls_proxy.sh" stop "$work/tls" >/dev/null 2>&1; rm -rf "$work"' EXIT
"$src/tests/s3/tls_proxy.sh" start "$work/tls" "127.0.0.1:${TD_S3_ENDPOINT##*:}" \
	"$TD_S3_BUCKET.localhost" ||
	fail "the TLS front did not start"
. "$work/tls/env"
tls_port=${TD_TLS_ENDPOINT##*:}
prefix="tls-$$-$RANDOM/"
mkdir -p "$work/state" "$work/cache" "$work/run"
tls_target() { # NAME CA_FILE [LINE...]
	local name=$1 ca=$2
	shift 2
	printf '\n[target "%s"]\ntype = s3\nendpoint = %s\nregion = %s\nbucket = %s\nprefix = %s%s/\n' \
		"$name" "$TD_TLS_ENDPOINT" "${TD_S3_REGION:-us-east-1}" "$TD_S3_BUCKET" "$prefix" "$name"
	[ -z "$ca" ] || printf 'ca_file = %s\n' "$ca"
	[ $# = 0 ] || printf '%s\n' "$@"
}
{
	td_conf_tierd "$work"
	tls_target tls "$TD_TLS_CA"
	tls_target tlsvirtual "$TD_TLS_CA" "addressing = virtual" "connect_to = 127.0.0.1:$tls_port"
	tls_target noca ""
	tls_target wrongca "$TD_TLS_OTHER_CA"
	td_conf_s3_target plain "${prefix}plain/"
} >"$work/tierd.conf"
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY

ct_expect 0 "https with ca_file" tls
ct_steps_ok "bucket reachable" put head "range get" list multipart delete
grep -q "plain http" <<<"$out" && fail "https endpoint warned of plain http"
ct_expect 0 "https, virtual-hosted, with ca_file" tlsvirtual
ct_steps_ok "bucket reachable" put head "range get" list multipart delete

ct_expect 1 "https without ca_file" noca
grep -q "TLS with $TD_TLS_ENDPOINT failed: its certificate is signed by no CA this host trusts; for a private CA set ca_file" <<<"$out" ||
	fail "no ca_file: no clear message"
ct_expect 1 "https with the wrong CA" wrongca
grep -q "TLS with $TD_TLS_ENDPOINT failed: its certificate is signed by no CA in ca_file = $TD_TLS_OTHER_CA" <<<"$out" ||
	fail "wrong CA: no clear message"

ct_expect 0 "plain http" plain
grep -q "plain http" <<<"$out" || fail "plain http endpoint: no warning"
echo "PASS"
