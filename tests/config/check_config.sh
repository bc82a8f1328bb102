#!/bin/sh
# tierd --check-config: the example config passes; a broken one fails with exit 2
# and FILE:LINE messages on stderr; a missing file is an error naming the file.
set -u
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tierd-check-config-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

check() { # description, condition result
	if [ "$2" -eq 0 ]; then echo "ok $1"; else echo "FAILED $1"; fail=1; fi
}

"$TIERD" --check-config -c "$TD_SOURCE_DIR/conf/tierd.conf" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "example config exits 0 (got $rc)" $([ $rc -eq 0 ]; echo $?)
grep -q '^\[policy "projects"\]$' "$tmp/out"
check "example config is dumped" $?
cat "$tmp/err"

# The dump is itself a valid config.
"$TIERD" --check-config -c "$tmp/out" >/dev/null 2>"$tmp/err2"
rc=$?
check "dump re-parses (got $rc)" $([ $rc -eq 0 ]; echo $?)

# pin_quota: the example's value is dumped; a set one comes back as set, and
# 0 (no pins for users) stays 0.
grep -q '^pin_quota *= *10%' "$tmp/out"
check "example pin_quota is dumped" $?
printf '[tierd]\npin_quota = 64M\n' >"$tmp/pq.conf"
"$TIERD" --check-config -c "$tmp/pq.conf" >"$tmp/pqout" 2>"$tmp/err"
rc=$?
check "pin_quota = 64M passes (got $rc)" $([ $rc -eq 0 ]; echo $?)
grep -Eq '^pin_quota *= *64M' "$tmp/pqout"
check "pin_quota = 64M is dumped" $?
printf '[tierd]\npin_quota = 0\n' >"$tmp/pq0.conf"
"$TIERD" --check-config -c "$tmp/pq0.conf" >"$tmp/pqout" 2>"$tmp/err"
grep -Eq '^pin_quota *= *0( |$)' "$tmp/pqout"
check "pin_quota = 0 is dumped" $?
printf '[tierd]\n\npin_quota = -5G\n' >"$tmp/pqbad.conf"
"$TIERD" --check-config -c "$tmp/pqbad.conf" >/dev/null 2>"$tmp/err"
rc=$?
cat "$tmp/err"
check "bad pin_quota exits 2 (got $rc)" $([ $rc -eq 2 ]; echo $?)
grep -q "^$tmp/pqbad.conf:3: pin_quota: " "$tmp/err"
check "pin_quota error names file:line" $?

cat >"$tmp/bad.conf" <<'CONF'
[tierd]
log_level = loud
[target "t"]
type = s3
endpoint = ftp://example.com
bucket = b
[policy "p"]
paths = relative/path
target = missing
CONF
"$TIERD" --check-config -c "$tmp/bad.conf" >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/err"
check "broken config exits 2 (got $rc)" $([ $rc -eq 2 ]; echo $?)
grep -q "^$tmp/bad.conf:2: log_level: " "$tmp/err"
check "log_level error names file:line" $?
grep -q "^$tmp/bad.conf:5: endpoint: " "$tmp/err"
check "endpoint error names file:line" $?
grep -q "^$tmp/bad.conf:6: bucket: " "$tmp/err"
check "bucket error names file:line" $?
grep -q "^$tmp/bad.conf:8: paths: " "$tmp/err"
check "paths error names file:line" $?
grep -q "^$tmp/bad.conf:9: target: .*undefined target 'missing'" "$tmp/err"
check "target error names file:line" $?
[ ! -s "$tmp/out" ]
check "nothing on stdout for a broken config" $?

"$TIERD" --check-config -c "$tmp/does-not-exist.conf" >/dev/null 2>"$tmp/err"
rc=$?
cat "$tmp/err"
check "missing file exits 2 (got $rc)" $([ $rc -eq 2 ]; echo $?)
grep -q "$tmp/does-not-exist.conf.*No such file" "$tmp/err"
check "missing file is named" $?

exit $fail
