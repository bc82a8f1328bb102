#!/usr/bin/env bash
# tierctl check-target on dir targets, with a config written here:
#   - a good directory: exit 0, every step ok, --json parses, no scratch left;
#   - an unknown name: exit 2 and the defined targets listed;
#   - a missing directory and a read-only one: exit 1 and a clear message.
set -u
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/tierd-check-target.XXXXXX")
ro_immutable=
cleanup() {
	[ -n "$ro_immutable" ] && chattr -i "$work/ro" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tier" "$work/ro" "$work/state" "$work/cache" "$work/run"
{
	td_conf_tierd "$work"
	td_conf_dir_target nas "$work/tier"
	td_conf_dir_target gone "$work/missing"
	td_conf_dir_target ro "$work/ro"
} >"$work/tierd.conf"

# The missing path is only missing when checked (the config parser may insist
# that a dir target exists when it loads).
mkdir -p "$work/missing"
ct_expect 0 "check-target nas" nas
ct_steps_ok open put head clock "range get" "get \\(sha256 verified\\)" list multipart delete
grep -q FAILED <<<"$out" && fail "a FAILED line on a good target"
left=$(find "$work/tier" -mindepth 1 | wc -l)
[ "$left" -eq 0 ] || fail "scratch left behind: $(find "$work/tier" -mindepth 1)"

# --json: one document, every step ok.
json=$("$tierctl" -c "$work/tierd.conf" --json check-target nas) || fail "--json: exit $?"
python3 - "$json" <<'PY' || fail "--json output wrong: $json"
import json, sys
d = json.loads(sys.argv[1])
assert d["ok"] is True, d
assert d["target"] == "nas"
names = [s["name"] for s in d["steps"]]
for want in ("put", "head", "range get", "list", "delete"):
    assert want in names, (want, names)
for s in d["steps"]:
    assert s["ok"] is True and s["error"] is None and isinstance(s["ms"], (int, float)), s
PY

# Unknown target: usage/config error, naming the targets there are.
ct_expect 2 "unknown target" nosuch
grep -q "nosuch" <<<"$out" || fail "unknown target not named"
grep -q "nas" <<<"$out" || fail "defined targets not listed"

# Missing directory: a failure, saying why.
rmdir "$work/missing"
ct_run gone
if [ $rc -eq 2 ]; then
	# The parser may refuse a dir target whose path is gone: that is a clear
	# configuration error too, as long as it says so.
	grep -qi "missing\|No such file" <<<"$out" || fail "missing dir: no clear message"
else
	[ $rc -eq 1 ] || fail "missing dir: exit $rc, want 1"
	grep -q "FAILED" <<<"$out" || fail "missing dir: no FAILED step"
	grep -q "No such file or directory" <<<"$out" || fail "missing dir: no reason given"
fi

# Not writable: root ignores modes, so make the directory immutable when we
# can; otherwise (not root) a 0555 mode does it.
if [ "$(id -u)" -eq 0 ]; then
	chattr +i "$work/ro" 2>/dev/null && ro_immutable=1
else
	chmod 0555 "$work/ro"
	ro_immutable=
fi
if [ "$(id -u)" -ne 0 ] || [ -n "$ro_immutable" ]; then
	ct_expect 1 "read-only dir" ro
	grep -qE "FAILED +put .*(Operation not permitted|Permission denied)" <<<"$out" ||
		fail "read-only dir: no clear put failure"
else
	echo "note: cannot make a directory read-only for root here (no chattr); skipped that case"
fi
echo "PASS"
