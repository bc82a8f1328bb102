#!/usr/bin/env bash
# Issue 12 item 5 — pin_quota: a user who is not an admin may have at most
# pin_quota bytes pinned. erin owns four 4000-byte tiered files and the quota
# is 9000: her first two pins pass, the third is refused with EDQUOT ("pin
# quota exceeded: 8000 of 9000 bytes pinned"), exit 1, one log line, and the
# file stays unpinned; root may still pin it; after she unpins two, her pin
# of the fourth passes.
. "$(dirname "$0")/lib.sh"
e2e_init pinquota
. "$E2E_LIB_DIR/users.sh"
erin=tdpq$$
e2e_user "$erin"
pass "user $erin made"

mkdir -p "$T/tier" "$T/data/erin"
for i in 1 2 3 4; do head -c 4000 /dev/urandom >"$T/data/erin/f$i"; done
chown -R "$erin:" "$T/data/erin"
chmod 0644 "$T/data/erin/"f*
e2e_conf "pin_quota = 9000" "$(dir_target_conf nas "$T/tier")" \
	"$(e2e_policy nas "$T/data" age_by= min_age=0s)"
e2e_start
ctl migrate "$T/data/erin/"f* >/dev/null && [ "$(find "$T/data/erin" -type l | wc -l)" = 4 ] &&
	pass "four files tiered" || e2e_abort "migrate failed"
sock=$T/run/tierd.sock
f=$T/data/erin
pinned_of() { # PATH: True or False, as root's info says
	ctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["pinned"])'
}
tc() { # ARGS...: tierctl as erin; prints stdout and stderr, then "rc=N"
	local rc=0 out
	out=$(as_user "$erin" "$TIERCTL" -s "$sock" "$@" 2>&1) || rc=$?
	printf '%s\nrc=%s\n' "$out" "$rc"
}

out=$(tc pin "$f/f1")
[[ $out == *rc=0* ]] && [ "$(pinned_of "$f/f1")" = True ] && pass "erin pins f1" || fail "erin's pin of f1: $out"
out=$(tc pin "$f/f2")
[[ $out == *rc=0* ]] && [ "$(pinned_of "$f/f2")" = True ] && pass "erin pins f2" || fail "erin's pin of f2: $out"

out=$(tc pin "$f/f3")
[[ $out == *rc=1* && $out == *"pin quota exceeded: 8000 of 9000 bytes pinned"* && $out == *EDQUOT* ]] &&
	pass "erin's third pin refused with EDQUOT, exit 1" || fail "erin's pin of f3: $out"
[ "$(pinned_of "$f/f3")" = False ] && pass "f3 stays unpinned" || fail "f3 pinned after a refused pin"
n=$(grep -c "pin refused: .*f3.*pin quota exceeded" "$T/tierd.log" || true)
[ "$n" = 1 ] && pass "one log line for the refusal" || fail "$n log lines for the refusal"
out=$(tc --json pin "$f/f3")
[[ $out == *'"errno": "EDQUOT"'* && $out == *rc=1* ]] && pass "--json names EDQUOT" || fail "--json pin of f3: $out"

ctl pin "$f/f3" >/dev/null && [ "$(pinned_of "$f/f3")" = True ] &&
	pass "root may pin f3 past erin's quota" || fail "root's pin of f3"

out=$(tc pin "$f/f4")
[[ $out == *rc=1* && $out == *"12000 of 9000"* ]] && pass "erin over quota (root's pin counts): f4 refused" ||
	fail "erin's pin of f4 over quota: $out"
out=$(tc unpin "$f/f1" "$f/f2")
[[ $out == *rc=0* ]] && [ "$(pinned_of "$f/f1")" = False ] && pass "erin unpins f1 and f2" ||
	fail "erin's unpin: $out"
out=$(tc pin "$f/f4")
[[ $out == *rc=0* ]] && [ "$(pinned_of "$f/f4")" = True ] && pass "unpinning freed quota: erin pins f4" ||
	fail "erin's pin of f4 after unpin: $out"

ctl status >/dev/null && kill -0 "$TDPID" && pass "still serving" || fail "daemon died"
tierd_stop
finish
