#!/usr/bin/env bash
# Issue 11, invariant 9 — no user can lock root out of the control socket.
# An unprivileged user keeps 200 connections open (a quarter trickling one
# byte every 100 ms, never a newline; each refused one comes back 0.5 s
# later); meanwhile root's status, and that of carol, a member of admin_group
# by a supplementary group, answer within 1 s (a 1 s timeout on the socket,
# and the time measured). The trickling connections the daemon took are cut
# within its 10 s request deadline.
. "$(dirname "$0")/lib.sh"
e2e_init ctlflood
. "$E2E_LIB_DIR/users.sh"
mal=tdfm$$ carol=tdfc$$ adm=tdfg$$
e2e_group "$adm"
e2e_user "$mal"
e2e_user "$carol" -G "$adm"
pass "users $mal and $carol (in $adm) made"
mkdir -p "$T/tier"
ADMIN_GROUP=$adm e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data")"
e2e_start
sock=$T/run/tierd.sock
FLOOD_S=16

as_user "$mal" /usr/bin/python3 - "$sock" 200 "$FLOOD_S" >"$T/flood.json" 2>"$T/flood.err" <<'EOF' &
import json, socket, sys, time
path, n, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
slots = [None] * n
retry_at = [0.0] * n
stats = {"opened": 0, "refused": 0, "trickle_lives": [], "max_open": 0}
while time.monotonic() - t0 < dur:
    now = time.monotonic()
    for i in range(n):
        st = slots[i]
        if st is None:
            if now < retry_at[i]:
                continue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect(path)
            except OSError:
                s.close()
                retry_at[i] = now + 0.5
                continue
            s.setblocking(False)
            slots[i] = {"s": s, "trickle": i % 4 == 0, "first": None, "last": 0.0}
            stats["opened"] += 1
            continue
        s, closed = st["s"], False
        try:
            d = s.recv(4096)
            if b"too many connections" in d:
                stats["refused"] += 1
            closed = d == b""
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        if not closed and st["trickle"] and now - st["last"] >= 0.1:
            try:
                s.send(b"{")
                st["last"] = now
                if st["first"] is None:
                    st["first"] = now
            except BlockingIOError:
                pass
            except OSError:
                closed = True
        if closed:
            if st["first"] is not None:
                stats["trickle_lives"].append(now - st["first"])
            s.close()
            slots[i] = None
            retry_at[i] = now + 0.5
    stats["max_open"] = max(stats["max_open"], sum(x is not None for x in slots))
    time.sleep(0.01)
json.dump(stats, sys.stdout)
EOF
flood=$!
E2E_CLEANUP_HOOKS=("kill $flood 2>/dev/null" "${E2E_CLEANUP_HOOKS[@]}")

# One status request with a 1 s timeout on the socket; prints the time taken.
probe='
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(1.0)
t = time.monotonic()
try:
    s.connect(sys.argv[1])
    s.sendall(b"{\"cmd\":\"status\"}\n")
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    took = time.monotonic() - t
    r = json.loads(buf)
except Exception as e:
    print("no answer: %r after %.3f s" % (e, time.monotonic() - t))
    sys.exit(1)
print("%.3f s, ok=%s%s" % (took, r.get("ok"), "" if r.get("ok") else " " + str(r.get("error"))))
sys.exit(0 if r.get("ok") is True and took < 1.0 and "files" in r else 1)
'
sleep 2 # the flood is under way
for round in 1 2 3 4 5 6; do
	out=$(python3 -c "$probe" "$sock") && pass "round $round: root's status answered in $out" ||
		fail "round $round: root's status: $out"
	out=$(as_user "$carol" /usr/bin/python3 -c "$probe" "$sock") &&
		pass "round $round: carol's (admin_group) status answered in $out" ||
		fail "round $round: carol's status: $out"
	sleep 2
done
wait "$flood" || fail "the flood itself failed: $(cat "$T/flood.err")"
python3 - "$T/flood.json" <<'EOF' && pass "flood: $(cat "$T/flood.sum")" || { fail "flood: $(cat "$T/flood.sum" 2>/dev/null)"; cat "$T/flood.json"; }
import json, sys
d = json.load(open(sys.argv[1]))
lives = d["trickle_lives"]
long_ = [x for x in lives if x > 5]
summary = "%d connections opened, %d refused, at most %d open at once; trickling ones the daemon took were cut after %s s" % (
    d["opened"], d["refused"], d["max_open"], ", ".join("%.1f" % x for x in long_) or "-")
open(sys.argv[1].replace(".json", ".sum"), "w").write(summary)
assert d["max_open"] >= 150, "the flood never held its connections"
assert d["refused"] > 0, "nothing was refused"
assert long_, "no trickling connection lived past 5 s: the deadline was not exercised"
assert max(lives) < 12.5, "a trickling connection lived %.1f s" % max(lives)
EOF
grep -q 'refusing uid' "$T/tierd.log" && pass "the refusals are logged" || fail "no refusal in the log"
[ "$(grep -c 'refusing uid' "$T/tierd.log")" -le $((FLOOD_S / 10 + 2)) ] &&
	pass "and rate-limited ($(grep -c 'refusing uid' "$T/tierd.log") lines)" || fail "refusals flood the log"
kill -0 "$TDPID" && pass "tierd still serving" || fail "tierd died"
tierd_stop
finish
