#!/usr/bin/env bash
# Acceptance 9 — the control socket: an unprivileged uid may query but gets
# exit 2 and "needs root" for migrate and run (and nothing moves); root may do
# both; garbage gets an error reply and the daemon keeps serving. Queries
# follow issue 11's rule: nobody may ask about files it can stat (and learns
# of others' only what stat shows: no id, no hash); a file it cannot stat is
# answered exactly as one that does not exist.
. "$(dirname "$0")/lib.sh"
e2e_init ctlperms
command -v setpriv >/dev/null || e2e_abort "setpriv (util-linux) missing"
mkdir -p "$T/tier"
for i in 1 2 3; do head -c 5000 /dev/urandom >"$T/data/f$i"; done
chmod 644 "$T/data/f"*
mkdir -m 0700 "$T/priv"
head -c 4321 /dev/urandom >"$T/priv/f"
snapshot "$T/data" "$T/snap"
e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data" age_by= min_age=0s)"
e2e_start
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
sock=$T/run/tierd.sock

"${nobody[@]}" "$TIERCTL" -s "$sock" --json status >/dev/null && pass "nobody may query status" || fail "nobody's status refused"
out=$("${nobody[@]}" "$TIERCTL" -s "$sock" --json info "$T/data/f1") && [[ $out == *'"size": 5000'* ]] &&
	pass "nobody may ask info of a file it can stat" || fail "nobody's info of f1: $out"
set +e
a=$("${nobody[@]}" "$TIERCTL" -s "$sock" --json info "$T/priv/f" 2>&1; echo "rc=$?")
n=$("${nobody[@]}" "$TIERCTL" -s "$sock" --json info "$T/priv/none" 2>&1; echo "rc=$?")
set -e
[ "${a//priv\/f/X}" = "${n//priv\/none/X}" ] && [[ $a != *4321* && $a == *"No such file"* ]] &&
	pass "nobody's info of a file it cannot stat answers as a missing one (${a##*rc=})" ||
	{ fail "nobody's info tells an unstatable file from a missing one:"; echo "$a"; echo "$n"; }
for cmd in "migrate $T/data/f1" "run p"; do
	set +e
	# shellcheck disable=SC2086
	out=$("${nobody[@]}" "$TIERCTL" -s "$sock" $cmd 2>&1)
	rc=$?
	set -e
	[ $rc = 2 ] && [[ $out == *"needs root"* ]] && pass "nobody: '${cmd%% *}' refused, exit 2 ($out)" ||
		fail "nobody's ${cmd%% *}: rc=$rc out=$out"
done
# A raw request as nobody, bypassing tierctl's own checks, is refused too.
"${nobody[@]}" /usr/bin/python3 - "$sock" "$T/data/f2" <<'PY' && pass "raw migrate request from nobody refused by the daemon" || fail "daemon accepted a raw migrate from nobody"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
f.write(json.dumps({"cmd": "migrate", "paths": [sys.argv[2]]}).encode() + b"\n"); f.flush()
r = json.loads(f.readline())
assert r["ok"] is False and "root" in r["error"], r
PY
wait_idle 30 || true
[ -z "$(find "$T/data" -type l)" ] && pass "nothing moved for nobody" || fail "files moved after refused requests"

ctl migrate "$T/data/f1" >/dev/null && [ -L "$T/data/f1" ] && pass "root may migrate" || fail "root's migrate"
out=$("${nobody[@]}" "$TIERCTL" -s "$sock" --json info "$T/data/f1")
[[ $out == *'"state": "'* && $out == *'"size": 5000'* && $out != *'"id"'* && $out != *sha256* ]] &&
	pass "nobody's info of root's tiered f1: what stat shows, no id or hash" || fail "nobody's info of tiered f1: $out"
ctl run p >/dev/null && wait_idle 60 && [ "$(find "$T/data" -type l | wc -l)" = 3 ] && pass "root may run" || fail "root's run"
tree_verify "files read back" "$T/data" "$T/snap" --all-tiered

python3 - "$sock" <<'PY' && pass "garbage gets error replies" || fail "garbage handling"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def ask(raw):
    f.write(raw); f.flush()
    return json.loads(f.readline())
for raw in (b"hello\n", b"\xff\xfe\x00\x01\n", b'{"cmd":"frobnicate"}\n', b'{"cmd":"migrate","paths":7}\n',
            b'{"cmd":"run"}\n', b'{"cmd":"run","policy":"nope"}\n', b'[1,2,3]\n', b"x" * 100000 + b"\n"):
    r = ask(raw)
    assert r["ok"] is False and r.get("error"), (raw[:40], r)
assert ask(b'{"cmd":"ping"}\n')["ok"] is True
PY
ctl status >/dev/null && kill -0 "$TDPID" && pass "still serving" || fail "daemon died"
tierd_stop
finish
