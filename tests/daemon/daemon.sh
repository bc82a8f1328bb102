#!/usr/bin/env bash
# tierd as a service: control socket, peer-credential checks, garbage input,
# SIGHUP with a broken config, sd_notify, a second instance, SIGTERM.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../lib/conf.sh"
. "$(dirname "$0")/../lib/daemon.sh"
. "$(dirname "$0")/../lib/report.sh"
t=$(mktemp -d /tmp/tierd-daemon.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	[ -n "${npid:-}" ] && kill "$npid" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

mkdir -p "$t/data" "$t/tier"
chmod 755 "$t" # the unprivileged checks below must reach the socket
{
	td_conf_tierd "$t" "log_level = debug" "admin_group = root"
	td_conf_dir_target nas "$t/tier"
	printf '\n[policy "data"]\npaths = %s\ntarget = nas\nschedule = manual\n' "$t/data"
} >"$t/tierd.conf"
cp "$t/tierd.conf" "$t/good.conf"

# sd_notify: a datagram socket that records what tierd says.
python3 - "$t/notify.sock" "$t/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a") as log:
    try:
        while True:
            log.write(s.recv(4096).decode() + "\n---\n")
            log.flush()
    except socket.timeout:
        pass
PY
npid=$!
for _ in $(seq 100); do [ -S "$t/notify.sock" ] && break; sleep 0.05; done

NOTIFY_SOCKET="$t/notify.sock" "$TIERD" -f -c "$t/tierd.conf" 2>"$t/tierd.log" &
pid=$!
td_daemon_wait "$t/tierd.conf" "$pid" && pass "tierd answers on its socket" ||
	{ cat "$t/tierd.log"; fail "tierd did not come up"; exit 1; }

for _ in $(seq 100); do grep -q "READY=1" "$t/notify.log" 2>/dev/null && break; sleep 0.05; done
grep -q "READY=1" "$t/notify.log" && pass "READY=1 sent to NOTIFY_SOCKET" || fail "no READY=1"

json=$("$TIERCTL" -c "$t/tierd.conf" --json status)
python3 - "$json" <<'PY' && pass "status --json has version, uptime_s, targets, in_flight" || fail "status --json: $json"
import json, sys
d = json.loads(sys.argv[1])
assert isinstance(d["version"], str) and d["version"]
assert isinstance(d["uptime_s"], int)
assert "nas" in d["targets"]
assert d["in_flight"] == 0
PY

# Garbage, over-long lines and unknown commands get error replies; the daemon lives.
python3 - "$t/run/tierd.sock" <<'PY' && pass "garbage gets specific error replies" || fail "garbage handling"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def ask(raw):
    f.write(raw); f.flush()
    return json.loads(f.readline())
r = ask(b"hello\n");                 assert r["ok"] is False and "malformed" in r["error"], r
r = ask(b"\xff\xfe\x00\x01\n");      assert r["ok"] is False and r["errno"] == "EINVAL", r
r = ask(b'{"cmd":"frobnicate"}\n');  assert r["ok"] is False and r["errno"] == "ENOSYS", r
r = ask(b"x" * 100000 + b"\n");      assert r["ok"] is False and r["errno"] == "EMSGSIZE", r
r = ask(b'{"cmd":"ping"}\n');        assert r["ok"] is True, r
PY
"$TIERCTL" -c "$t/tierd.conf" status >/dev/null && pass "still serving after garbage" || fail "died after garbage"

# Unprivileged users may query but not change anything.
if command -v setpriv >/dev/null; then
	as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	"${as_nobody[@]}" "$TIERCTL" -s "$t/run/tierd.sock" status >/dev/null &&
		pass "nobody may query status" || fail "nobody could not query"
	set +e
	out=$("${as_nobody[@]}" "$TIERCTL" -s "$t/run/tierd.sock" reload 2>&1)
	rc=$?
	set -e
	[ $rc = 2 ] && [[ $out == *"needs root"* ]] && pass "nobody is refused a reload (exit 2: $out)" ||
		fail "nobody's reload: rc=$rc out=$out"
	"$TIERCTL" -s "$t/run/tierd.sock" reload >/dev/null && pass "root may reload" || fail "root reload refused"
else
	fail "setpriv (util-linux) missing"
fi

# SIGHUP with a broken config: rejected, old one kept, errors logged with file:line.
echo "bogus_key = 1" >>"$t/tierd.conf"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "rejected" "$t/tierd.log" && break; sleep 0.05; done
grep -q "rejected" "$t/tierd.log" && grep -q "tierd.conf:[0-9]*" "$t/tierd.log" &&
	pass "broken config rejected on SIGHUP, errors logged" || fail "SIGHUP with a broken config: $(tail -3 "$t/tierd.log")"
"$TIERCTL" -c "$t/good.conf" status >/dev/null && pass "still running on the old config" || fail "died on a bad reload"
cp "$t/good.conf" "$t/tierd.conf"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reloaded" "$t/tierd.log" && break; sleep 0.05; done
grep -q "reloaded" "$t/tierd.log" && pass "good config reloaded" || fail "good reload not logged"

# A second instance on the same run_dir refuses to start and leaves the first alone.
set +e
"$TIERD" -f -c "$t/tierd.conf" 2>"$t/second.log"
rc=$?
set -e
[ $rc = 1 ] && grep -q "already running" "$t/second.log" && pass "second instance refused" ||
	fail "second instance: rc=$rc $(cat "$t/second.log")"
"$TIERCTL" -c "$t/tierd.conf" status >/dev/null && pass "first instance unharmed" || fail "first instance lost its socket"

# SIGTERM: clean exit, socket removed, STOPPING=1.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc = 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM exit $rc"
[ ! -e "$t/run/tierd.sock" ] && pass "socket removed" || fail "socket left behind"
grep -q "STOPPING=1" "$t/notify.log" && pass "STOPPING=1 sent" || fail "no STOPPING=1"
set +e
"$TIERCTL" -c "$t/tierd.conf" status >/dev/null 2>&1
rc=$?
set -e
[ $rc = 3 ] && pass "tierctl exits 3 when the daemon is down" || fail "tierctl exit $rc with the daemon down"

finish
