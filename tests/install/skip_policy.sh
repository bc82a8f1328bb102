#!/usr/bin/env bash
# With -DTD_TESTS_MAY_SKIP=OFF (what scripts/test, and so CI, configures) no
# registered test may treat exit 77 as a skip: a missing component must fail.
# With the default ON, the tests that can skip do (developer builds).
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
