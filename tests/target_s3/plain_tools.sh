#!/usr/bin/env bash
# Objects plain tools can read (file-object duality), under a prefix with
# hostile bytes (blank, non-ASCII, + % ~): a file tiered by `migrate` is, in
# the bucket, its original bytes for `aws s3 cp` and `rclone cat`; its
# manifest KEY.json next to it is plain JSON with the owner, the permission
# bits ("perm") and the sha256; the object's x-amz-meta-* headers carry mode,
# uid, gid and mtime, so `aws s3api head-object` and `rclone lsl` show the
# original values. What docs/tierd.8 (OBJECTS) promises. Run against each S3
# server (tests/s3/on.sh).
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init plaintools s3
export TZ=UTC # rclone lsl prints local time
command -v rclone >/dev/null || e2e_abort "rclone not installed"
E2E_PREFIX="e2e-$$-plain a+b%20~ü $(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')/"

mkdir -p "$T/data"
f=$T/data/report.bin
head -c 3000000 /dev/urandom >"$f"
chown 1234:5678 "$f"
chmod 0640 "$f"
touch -m -d '@1600000000.123456789' "$f"
sum=$(sha256sum <"$f" | cut -d' ' -f1)

e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data")"
e2e_start
ctl migrate "$f" >"$T/migrate.out" 2>&1 && pass "migrate" || e2e_abort "migrate: $(cat "$T/migrate.out")"
key=$(ctl --json ls | python3 -c '
import json, sys
fs = json.load(sys.stdin)["files"]
assert len(fs) == 1, fs
print(fs[0]["key"])')
case $key in "$E2E_PREFIX"*) ;; *) key=$E2E_PREFIX$key ;; esac
echo "  key: $key"

# The bytes, by aws cli and by rclone.
got=$(aws --endpoint-url "$TD_S3_ENDPOINT" s3 cp "s3://$TD_S3_BUCKET/$key" - | sha256sum | cut -d' ' -f1)
[ "$got" = "$sum" ] && pass "aws s3 cp gives the original bytes" || fail "aws s3 cp: sha256 $got, want $sum"
export RCLONE_CONFIG=$T/rclone.conf RCLONE_CONFIG_T_TYPE=s3 RCLONE_CONFIG_T_PROVIDER=Other
export RCLONE_CONFIG_T_ENDPOINT=$TD_S3_ENDPOINT RCLONE_CONFIG_T_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY
export RCLONE_CONFIG_T_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY RCLONE_CONFIG_T_REGION=${TD_S3_REGION:-us-east-1}
export RCLONE_CONFIG_T_FORCE_PATH_STYLE=true
: >"$RCLONE_CONFIG"
# rclone refuses its own transport with AWS_CA_BUNDLE set (as some hosts do).
rclone() { env -u AWS_CA_BUNDLE rclone "$@"; }
got=$(rclone cat "t:$TD_S3_BUCKET/$key" 2>"$T/rclone.err" | sha256sum | cut -d' ' -f1)
[ "$got" = "$sum" ] && pass "rclone cat gives the original bytes" ||
	fail "rclone cat: sha256 $got, want $sum: $(tail -3 "$T/rclone.err")"

# The manifest: plain JSON next to the object.
aws --endpoint-url "$TD_S3_ENDPOINT" s3 cp "s3://$TD_S3_BUCKET/$key.json" "$T/manifest.json" >/dev/null &&
	python3 - "$T/manifest.json" "$sum" "$f" <<'PY' && pass "manifest: plain JSON with perm 0640, uid, gid, mtime, sha256, path" || fail "manifest: $(cat "$T/manifest.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["perm"] == "0640", m
assert m["mode"] == 0o100640, m  # the full st_mode, as version 1 has it
assert (m["uid"], m["gid"]) == (1234, 5678), m
assert m["mtime_ns"] == 1600000000123456789, m
assert m["sha256"] == sys.argv[2], m
assert m["path"] == sys.argv[3], m
assert m["size"] == 3000000, m
PY

# The headers, as tools show them.
aws --endpoint-url "$TD_S3_ENDPOINT" s3api head-object --bucket "$TD_S3_BUCKET" --key "$key" >"$T/head.json" &&
	python3 - "$T/head.json" <<'PY' && pass "head-object: x-amz-meta-mode 0640, uid 1234, gid 5678, mtime 1600000000.123456789" || fail "head-object: $(cat "$T/head.json")"
import json, sys
md = json.load(open(sys.argv[1]))["Metadata"]
assert md.get("mode") == "0640", md
assert md.get("uid") == "1234" and md.get("gid") == "5678", md
assert md.get("mtime") == "1600000000.123456789", md
assert md.get("tierd-size") == "3000000", md
PY
line=$(rclone lsl "t:$TD_S3_BUCKET/$key" 2>"$T/rclone.err")
echo "  rclone lsl: $line"
want=$(TZ=UTC date -d @1600000000.123456789 '+%Y-%m-%d %H:%M:%S.%N')
[[ $line == *" $want "* ]] && pass "rclone lsl shows the original mtime ($want)" ||
	fail "rclone lsl: '$line', want mtime $want: $(tail -3 "$T/rclone.err")"
finish
