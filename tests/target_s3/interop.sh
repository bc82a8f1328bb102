#!/usr/bin/env bash
# interop (label s3): objects written by tierd's s3 target are read by
# `aws s3 cp` and `rclone` with the same SHA-256 and their metadata shows in
# their HEAD; objects they write are read back by tierd, verified; no multipart
# upload is left open. Usage: interop.sh PATH/TO/s3tool
set -euo pipefail
tool=$1
. "$(dirname "$0")/../lib/missing.sh"
td_need_s3
td_need_cmds aws rclone sha256sum
work=$(mktemp -d)
pfx="interop-$$-$RANDOM/"
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
export AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
export TD_S3_PREFIX=$pfx TD_S3_PART_SIZE=5242880
export RCLONE_CONFIG_X_TYPE=s3 RCLONE_CONFIG_X_PROVIDER=Ceph RCLONE_CONFIG_X_ENV_AUTH=false
export RCLONE_CONFIG_X_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY RCLONE_CONFIG_X_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
export RCLONE_CONFIG_X_ENDPOINT=$TD_S3_ENDPOINT RCLONE_CONFIG_X_REGION=$AWS_DEFAULT_REGION
b=$TD_S3_BUCKET
awsc() { aws --endpoint-url "$TD_S3_ENDPOINT" "$@"; }
rcl() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
cleanup() {
	awsc s3 rm --recursive --only-show-errors "s3://$b/$pfx" || true
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

head -c $((12 * 1024 * 1024 + 17)) /dev/urandom >"$work/big"   # multipart (3 parts)
head -c 1000 /dev/urandom >"$work/small"                       # single PUT
for f in big small; do
	key="dir/$f file+x=y"
	want=$(sha "$work/$f")
	out=$("$tool" put "$key" "$work/$f" tierd-sha256="$want" tierd-mode=0644)
	[ "${out%% *}" = "$want" ] || fail "tierd's SHA-256 of $f: $out"
	awsc s3 cp --only-show-errors "s3://$b/$pfx$key" "$work/$f.aws"
	[ "$(sha "$work/$f.aws")" = "$want" ] || fail "aws s3 cp got other bytes for $f"
	awsc s3api head-object --bucket "$b" --key "$pfx$key" >"$work/head.json"
	grep -q "\"tierd-sha256\": \"$want\"" "$work/head.json" || fail "metadata not in aws head-object: $(cat "$work/head.json")"
	grep -q "\"tierd-mode\": \"0644\"" "$work/head.json" || fail "tierd-mode not in aws head-object"
	rcl copyto "x:$b/$pfx$key" "$work/$f.rclone"
	[ "$(sha "$work/$f.rclone")" = "$want" ] || fail "rclone got other bytes for $f"
	rcl lsjson -M "x:$b/$pfx$key" >"$work/rclone.json"
	grep -q "$want" "$work/rclone.json" || fail "metadata not in rclone lsjson -M: $(cat "$work/rclone.json")"
	echo "ok $f: aws and rclone read tierd's object ($want)"
done

# The other way round: their uploads (multipart for aws at 8 MiB chunks) read by tierd.
awsc s3 cp --only-show-errors "$work/big" "s3://$b/${pfx}from-aws/big"
"$tool" get "from-aws/big" "$work/big.td1" "$(sha "$work/big")"
rcl copyto "$work/big" "x:$b/${pfx}from-rclone/big"
"$tool" get "from-rclone/big" "$work/big.td2" "$(sha "$work/big")"
echo "ok tierd reads aws's and rclone's objects"

# Nothing left open.
n=$(awsc s3api list-multipart-uploads --bucket "$b" --prefix "$pfx" --query 'length(Uploads || `[]`)')
[ "$n" = 0 ] || fail "$n multipart uploads left open"
[ "$("$tool" cleanup)" = 0 ] || fail "cleanup found stale uploads"
echo "ok no multipart upload left open"
