#!/usr/bin/env bash
# With -DTD_TESTS_MAY_SKIP=OFF (what scripts/test, and so CI, configures) no
# registered test may treat exit 77 as a skip: a missing component must fail.
# With the default ON, the tests that can skip do (developer builds).
# Every test's environment carries the option (TD_TESTS_MAY_SKIP=0|1), and
# tests/lib/missing.sh fails or skips by it (checked here too).
set -euo pipefail
: "${TD_BUILD_DIR:?}"
may=$(sed -n 's/^TD_TESTS_MAY_SKIP:BOOL=//p' "$TD_BUILD_DIR/CMakeCache.txt")
cd "$TD_BUILD_DIR"
ctest --show-only=json-v1 | python3 -c '
import json, sys
may = sys.argv[1].upper() in ("ON", "1", "TRUE", "YES")
skippers = [t["name"] for t in json.load(sys.stdin)["tests"]
            if any(p["name"] == "SKIP_RETURN_CODE" and p["value"] == 77 for p in t.get("properties", []))]
if may and not skippers:
    print("FAIL: TD_TESTS_MAY_SKIP=ON but no test may skip"); sys.exit(1)
if not may and skippers:
    print("FAIL: TD_TESTS_MAY_SKIP=OFF but these tests still skip on exit 77:", " ".join(skippers)); sys.exit(1)
print("ok TD_TESTS_MAY_SKIP=%s: %d test(s) may skip" % ("ON" if may else "OFF", len(skippers)))
' "$may"

# Every registered test gets TD_TESTS_MAY_SKIP (0 with the option OFF), which
# the missing-component helpers read.
want=1
case ${may^^} in OFF | 0 | FALSE | NO) want=0 ;; esac
ctest --show-only=json-v1 | python3 -c '
import json, sys
want = sys.argv[1]
bad = []
for t in json.load(sys.stdin)["tests"]:
    env = [p["value"] for p in t.get("properties", []) if p["name"] == "ENVIRONMENT"]
    env = env[0] if env else []
    if "TD_TESTS_MAY_SKIP=" + want not in env:
        bad.append(t["name"])
if bad:
    print("FAIL: without TD_TESTS_MAY_SKIP=%s in their environment:" % want, " ".join(bad)); sys.exit(1)
print("ok every test runs with TD_TESTS_MAY_SKIP=%s" % want)
' "$want"

# The helpers themselves (tests/lib/missing.sh): a missing component fails
# (exit 1) under CI or with TD_TESTS_MAY_SKIP=0, and skips (77) only with
# neither.
src=${TD_SOURCE_DIR:?}
rc_of() { set +e; env -u CI "$@" bash -c '. "$1/tests/lib/missing.sh"; td_need_s3; exit 0' _ "$src" >/dev/null; echo $?; set -e; }
nos3=(env -u TD_S3_ENDPOINT -u TD_S3_ACCESS_KEY -u TD_S3_SECRET_KEY -u TD_S3_BUCKET)
r=$(rc_of "${nos3[@]}" TD_TESTS_MAY_SKIP=0)
[ "$r" = 1 ] || { echo "FAIL: td_need_s3 with TD_TESTS_MAY_SKIP=0 and no S3: exit $r, want 1"; exit 1; }
r=$(rc_of "${nos3[@]}" TD_TESTS_MAY_SKIP=1 CI=true)
[ "$r" = 1 ] || { echo "FAIL: td_need_s3 under CI and no S3: exit $r, want 1"; exit 1; }
r=$(rc_of "${nos3[@]}" TD_TESTS_MAY_SKIP=1)
[ "$r" = 77 ] || { echo "FAIL: td_need_s3 on a developer build and no S3: exit $r, want 77"; exit 1; }
r=$(rc_of TD_S3_ENDPOINT=http://x TD_S3_ACCESS_KEY=a TD_S3_SECRET_KEY=b TD_S3_BUCKET=c TD_TESTS_MAY_SKIP=0)
[ "$r" = 0 ] || { echo "FAIL: td_need_s3 with TD_S3_* set: exit $r, want 0"; exit 1; }
set +e
env -u CI TD_TESTS_MAY_SKIP=0 bash -c '. "$1/tests/lib/missing.sh"; td_need_cmds sh no-such-command-tierd; exit 0' _ "$src" >/dev/null
r=$?
set -e
[ "$r" = 1 ] || { echo "FAIL: td_need_cmds of a missing command with TD_TESTS_MAY_SKIP=0: exit $r, want 1"; exit 1; }
echo "ok tests/lib/missing.sh: fails under CI or TD_TESTS_MAY_SKIP=0, skips only on a developer build"
